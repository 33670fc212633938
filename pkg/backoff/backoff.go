// Package backoff computes retry delays: exponential, capped, with jitter.
//
// Retries in these services are persisted (an outbox row's next attempt, an application's next
// poll) rather than run in a loop that sleeps, so what is needed is a pure "how long until attempt
// n+1" function, not a retry loop; that is all this is.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: Base after the first failure, doubling up to Max.
type Policy struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait after `failures` consecutive failures (1 for the first). It uses "equal
// jitter": half the exponential delay, plus a random amount up to the other half, so retries of
// many clients spread out while none retries sooner than half the nominal delay.
func (p Policy) Delay(failures int) time.Duration {
	d := p.nominal(failures)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// DelayAtLeast is Delay, but never shorter than what the other side asked for (Retry-After).
// A Retry-After longer than Max is honoured up to 4×Max, so a confused server cannot park a retry
// for days.
func (p Policy) DelayAtLeast(failures int, retryAfter time.Duration) time.Duration {
	d := p.Delay(failures)
	if retryAfter > d {
		d = min(retryAfter, 4*p.Max)
	}
	return d
}

func (p Policy) nominal(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	d := p.Base
	for i := 1; i < failures && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}
