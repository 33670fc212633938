package lifecycle_test

import (
	"testing"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/ca"
)

// hostedWithWindow gets a hosted one-year certificate whose CA publishes window as its renewal
// information, and lets the ticker ask for it; it returns the bundle and the first instance.
func (e *env) hostedWithWindow(window func(at func(float64) time.Time) ca.RenewalWindow) (*lifecyclev1.Bundle, string) {
	e.t.Helper()
	b, _ := e.hosting()
	first := b.GetCertificates()[0].GetCertificateId()
	chain := e.certificate(first).GetCurrentIssuance().GetCertificateChainPem()
	at := func(d float64) time.Time { return start.Add(time.Duration(d * float64(day))) }
	e.ca.setWindow(chain, window(at))
	e.clk.Advance(time.Minute)
	e.tick() // renewal information is asked for right after issuance
	return b, first
}

// TestRenewalInformation: with a CA that publishes renewal windows (RFC 9773), the renewal happens
// inside the window instead of at the fixed renew-before, follows the window when the CA moves it
// earlier (as after a mass revocation), and tells the CA which certificate it replaces.
func TestRenewalInformation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	at := func(d float64) time.Time { return start.Add(time.Duration(d * float64(day))) }
	b, first := e.hostedWithWindow(func(at func(float64) time.Time) ca.RenewalWindow {
		return ca.RenewalWindow{Start: at(300), End: at(302), RetryAfter: 24 * time.Hour}
	})
	renew := e.certificate(first).GetRenewTime().AsTime()
	if renew.Before(at(300)) || renew.After(at(302)) {
		t.Fatalf("renew_time = day %.2f, want inside the CA's window [300, 302] (not the default day 335)", days(start, renew))
	}

	// The CA moves the window earlier at day 100; the daily re-check follows it.
	e.advance(100*day, nil)
	firstChain := e.certificate(first).GetCurrentIssuance().GetCertificateChainPem()
	e.ca.setWindow(firstChain, ca.RenewalWindow{Start: at(150), End: at(151), RetryAfter: 24 * time.Hour})
	e.advance(day+time.Minute, nil)
	renew = e.certificate(first).GetRenewTime().AsTime()
	if renew.Before(at(150)) || renew.After(at(151)) {
		t.Fatalf("after the CA moved its window: renew_time = day %.2f, want inside [150, 151]", days(start, renew))
	}
	e.advance(52*day, nil)
	var started time.Time
	for _, ev := range e.history(first) {
		if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED {
			started = ev.GetTime().AsTime()
		}
	}
	if started.Before(at(150)) || started.After(at(151)) {
		t.Errorf("renewal started at day %.2f, want inside the window [150, 151]", days(start, started))
	}
	// The successor takes over at the predecessor's not_after (day 365), in instance 2's year.
	if got := e.states(b.GetBundleId()); got[0] != stIssued || got[1] != stHosted {
		t.Fatalf("states %v, want instance 2 hosted and instance 1 still valid", got)
	}

	// The renewal named the certificate it replaces.
	e.ca.mu.Lock()
	last := e.ca.requests[len(e.ca.requests)-1]
	e.ca.mu.Unlock()
	if string(last.Replaces) != firstChain {
		t.Error("the renewal's CA request does not carry the replaced certificate")
	}
}

// TestRenewalInformationCutoff: a window is trusted only up to 1/20 of the lifetime before expiry
// (a window pushed late could let the certificate expire): the part after that line is cut off,
// and a window wholly after it is ignored in favour of the default renewal time.
func TestRenewalInformationCutoff(t *testing.T) {
	t.Parallel()
	cutoff := 365 - 365.0/20 // day 346.75 for a one-year certificate
	for _, tc := range []struct {
		name       string
		start, end float64
		lo, hi     float64 // where the renewal must land
	}{
		{"a window across the line is cut at it", 340, 360, 340, cutoff},
		{"a window wholly after the line is ignored", 350, 364, 335, 335},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{maxValidity: 398 * day})
			_, first := e.hostedWithWindow(func(at func(float64) time.Time) ca.RenewalWindow {
				return ca.RenewalWindow{Start: at(tc.start), End: at(tc.end), RetryAfter: 24 * time.Hour}
			})
			renew := days(start, e.certificate(first).GetRenewTime().AsTime())
			if renew < tc.lo-1e-6 || renew > tc.hi+1e-6 {
				t.Errorf("renew_time = day %.3f, want within [%.3f, %.3f]", renew, tc.lo, tc.hi)
			}
		})
	}
}
