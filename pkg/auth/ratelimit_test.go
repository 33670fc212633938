package auth

import (
	"fmt"
	"testing"
	"time"
)

// The per-account buckets: a burst, then refusals until tokens refill; and the sweep drops only
// buckets that have filled up again, so an account's budget is the same whether or not its bucket
// was dropped, and idle accounts do not accumulate.
func TestAccountLimits(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := newAccountLimits(10, 20) // 10/s, bursts of 20

	for i := range 20 {
		if !a.allow("busy", t0) {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	if a.allow("busy", t0) {
		t.Fatal("call 21 at once allowed, want refused")
	}
	for i := range 1000 {
		if !a.allow(fmt.Sprintf("idle-%d", i), t0) {
			t.Fatalf("first call of idle-%d refused", i)
		}
	}
	if n := len(a.buckets); n != 1001 {
		t.Fatalf("%d buckets, want 1001", n)
	}

	// A minute later every bucket is full again; the sweep drops them all but the one used now.
	t1 := t0.Add(limitSweepEvery)
	if !a.allow("busy", t1) {
		t.Fatal("busy refused after refilling")
	}
	if n := len(a.buckets); n != 1 {
		t.Errorf("%d buckets after the sweep, want 1 (busy's)", n)
	}

	// busy empties its bucket; a minute later it has refilled for only a second (10 tokens of 20),
	// so the sweep keeps it: busy gets 10 calls, not a new bucket's 20.
	t2 := t1.Add(limitSweepEvery - time.Second)
	for a.allow("busy", t2) {
	}
	t3 := t1.Add(limitSweepEvery)
	allowed := 0
	for a.allow("busy", t3) {
		allowed++
	}
	if allowed != 10 {
		t.Errorf("busy made %d calls after the sweep, want the 10 its bucket had refilled", allowed)
	}
}
