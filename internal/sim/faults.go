package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/ca"
)

// FaultyCA wraps a real CA client (ca.Client and the optional interfaces the lifecycle service
// looks for) and injects the faults of the simulation: a share of calls fail with a transient
// error (the contract's "try again later"), a share of issued applications come back rejected
// instead (a verdict: the CA decided; as a DNS rejection, the kind a CA's resolver glitch causes
// and the one the service retries by itself — a POLICY or ORGANIZATION rejection waits for a
// support engineer, whom the simulation does not model), and during an outage every call fails.
// Rejections are injected into renewals only (requests with Replaces): a first application's
// rejection is the customer's to retry, which the simulation does not model. Draws come from a seeded RNG
// behind a mutex: one seed gives one sequence of draws (the order of the ticker's concurrent
// calls still varies).
type FaultyCA struct {
	ca.Client
	Clock clockwork.Clock
	// TransientRate and RejectRate are the shares of calls failed and of issuances rejected.
	TransientRate, RejectRate float64
	// OutageStart and OutageEnd bound the total outage [start, end).
	OutageStart, OutageEnd time.Time
	mu                     sync.Mutex
	rng                    *rand.Rand
	renewals               map[string]bool // refs of renewal submissions

	// Counters of what was injected and passed through.
	Transient, Rejected, Outage, Calls atomic.Int64
}

// NewFaultyCA wraps client with the faults drawn from seed.
func NewFaultyCA(client ca.Client, clk clockwork.Clock, seed uint64) *FaultyCA {
	return &FaultyCA{Client: client, Clock: clk, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), renewals: map[string]bool{}}
}

// errTransient and errOutage are what the CA "says" when a call fails.
var (
	errTransient = errors.New("sim: injected transient CA error (503)")
	errOutage    = errors.New("sim: CA outage: connection refused")
)

func (f *FaultyCA) draw() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64()
}

// fail decides a call's fate: an outage or transient error, or nil to pass it on.
func (f *FaultyCA) fail() error {
	f.Calls.Add(1)
	now := f.Clock.Now()
	if !now.Before(f.OutageStart) && now.Before(f.OutageEnd) {
		f.Outage.Add(1)
		return errOutage
	}
	if f.draw() < f.TransientRate {
		f.Transient.Add(1)
		return errTransient
	}
	return nil
}

// Submit implements ca.Client.
func (f *FaultyCA) Submit(ctx context.Context, r ca.Request) (ca.Submission, error) {
	if err := f.fail(); err != nil {
		return ca.Submission{}, err
	}
	sub, err := f.Client.Submit(ctx, r)
	if err == nil && len(r.Replaces) > 0 {
		f.mu.Lock()
		f.renewals[sub.Ref] = true
		f.mu.Unlock()
	}
	return sub, err
}

// Status implements ca.Client: an issuance is turned into a rejection RejectRate of the time.
func (f *FaultyCA) Status(ctx context.Context, ref string) (ca.Status, error) {
	if err := f.fail(); err != nil {
		return ca.Status{}, err
	}
	st, err := f.Client.Status(ctx, ref)
	f.mu.Lock()
	renewal := f.renewals[ref]
	f.mu.Unlock()
	if err == nil && st.State == ca.Issued && renewal && f.draw() < f.RejectRate {
		f.Rejected.Add(1)
		return ca.Status{State: ca.Rejected, Reason: ca.ReasonDNS, Message: "sim: injected rejection (domain control not verified)"}, nil
	}
	return st, err
}

// Cancel implements ca.Client.
func (f *FaultyCA) Cancel(ctx context.Context, ref string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Client.Cancel(ctx, ref)
}

// Instructions passes the wrapped CA's on (ca.Instructor).
func (f *FaultyCA) Instructions(binding string, domains []string) []ca.DNSRecord {
	return f.Client.(ca.Instructor).Instructions(binding, domains)
}

// VerdictTimeout passes the wrapped CA's on (ca.VerdictTimer).
func (f *FaultyCA) VerdictTimeout() time.Duration {
	if vt, ok := f.Client.(ca.VerdictTimer); ok {
		return vt.VerdictTimeout()
	}
	return 0
}
