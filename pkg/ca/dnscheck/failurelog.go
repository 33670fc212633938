package dnscheck

import (
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// DefaultLogInterval is how often FailureLog warns at most.
const DefaultLogInterval = time.Minute

// FailureLog tells operators that DNS lookups are failing, without a line per lookup: at WARN, at
// most once per Interval, with how many applications the failures hold up and the latest error;
// and at INFO once lookups answer again. Every application whose poll had a failed lookup is
// counted until a later poll of it gets answers, or until it has not failed for two intervals (it
// was decided, cancelled, or is no longer polled). Safe for concurrent use.
type FailureLog struct {
	// Log receives the lines.
	Log *slog.Logger
	// Clock is the time (default: the real clock).
	Clock clockwork.Clock
	// What names the lookups in the lines ("validation record", "CAA", "delegation CNAME").
	What string
	// Resolver is the DNS server asked, for the lines.
	Resolver string
	// Interval is the shortest time between two warnings (default DefaultLogInterval).
	Interval time.Duration

	mu      sync.Mutex
	held    map[string]time.Time // application -> last failure
	lastErr error
	warned  time.Time // when the last warning was logged; zero when none since the last recovery
}

// Failed records a failed lookup of application ref, and warns if none was logged for Interval.
func (f *FailureLog) Failed(ref string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.held == nil {
		f.held = map[string]time.Time{}
	}
	f.held[ref], f.lastErr = now, err
	interval := f.interval()
	if !f.warned.IsZero() && now.Sub(f.warned) < interval {
		return
	}
	f.prune(now)
	f.warned = now
	f.Log.Warn("DNS lookups failing; no verdict while they do: the applications stay pending and are checked again with backoff",
		"lookups", f.What, "resolver", f.Resolver, "applications_held", len(f.held), "err", err)
}

// Answered records that application ref got answers again; when no application is held any
// more after a warning, it says so once.
func (f *FailureLog) Answered(ref string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.held[ref]; !ok {
		return
	}
	delete(f.held, ref)
	f.prune(f.now())
	if len(f.held) == 0 && !f.warned.IsZero() {
		f.warned = time.Time{}
		f.Log.Info("DNS lookups answer again", "lookups", f.What, "resolver", f.Resolver, "last_err", f.lastErr)
	}
}

// Held is how many applications failed lookups hold up now.
func (f *FailureLog) Held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prune(f.now())
	return len(f.held)
}

func (f *FailureLog) prune(now time.Time) {
	for ref, at := range f.held {
		if now.Sub(at) > 2*f.interval() {
			delete(f.held, ref)
		}
	}
}

func (f *FailureLog) interval() time.Duration {
	if f.Interval <= 0 {
		return DefaultLogInterval
	}
	return f.Interval
}

func (f *FailureLog) now() time.Time {
	if f.Clock == nil {
		return time.Now()
	}
	return f.Clock.Now()
}
