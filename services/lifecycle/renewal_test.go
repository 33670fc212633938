package lifecycle

import (
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
)

const day = 24 * time.Hour

func TestRenewBefore(t *testing.T) {
	for _, tc := range []struct {
		name               string
		lifetime, override time.Duration
		want               time.Duration
	}{
		{"one-year certificate renews 30 days ahead", 365 * day, 0, 30 * day},
		{"200-day certificate renews 30 days ahead", 200 * day, 0, 30 * day},
		{"47-day certificate renews a third of its life ahead", 47 * day, 0, 47 * day / 3},
		{"55-day remainder renews 55/3 days ahead", 55 * day, 0, 55 * day / 3},
		{"bundle setting replaces the default", 200 * day, 45 * day, 45 * day},
		{"bundle setting is capped at half the lifetime", 47 * day, 30 * day, 47 * day / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewBefore(tc.lifetime, tc.override); got != tc.want {
				t.Errorf("RenewBefore(%v, %v) = %v, want %v", tc.lifetime, tc.override, got, tc.want)
			}
		})
	}
}

func TestEscalateBefore(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		lifetime, renewBefore time.Duration
		want                  time.Duration
	}{
		{"one-year certificate escalates 7 days ahead", 365 * day, 30 * day, 7 * day},
		{"47-day certificate escalates a tenth of its life ahead", 47 * day, 47 * day / 3, 47 * day / 10},
		{"never before half the renewal window", 200 * day, 4 * day, 2 * day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EscalateBefore(tc.lifetime, tc.renewBefore); got != tc.want {
				t.Errorf("EscalateBefore(%v, %v) = %v, want %v", tc.lifetime, tc.renewBefore, got, tc.want)
			}
		})
	}
}

func TestNextRenewalRetry(t *testing.T) {
	now := time.Date(2027, 5, 20, 9, 0, 0, 0, time.UTC)
	far := now.Add(30 * day)
	for _, tc := range []struct {
		name        string
		attempt     int
		renewBefore time.Duration
		inUseEnds   time.Time
		want        time.Duration // after now; 0 when no retry
	}{
		{"first retry of a 30-day window: an hour", 1, 30 * day, far, time.Hour},
		{"second: doubling", 2, 30 * day, far, 2 * time.Hour},
		{"sixth: capped at a day", 6, 30 * day, far, 24 * time.Hour},
		{"fortieth: still a day", 40, 30 * day, far, 24 * time.Hour},
		{"47-day certificate: scaled by its 15.7-day window", 1, 47 * day / 3, far, time.Duration(float64(time.Hour) * (47.0 / 3 / 30))},
		{"47-day certificate: its cap", 10, 47 * day / 3, far, time.Duration(float64(24*time.Hour) * (47.0 / 3 / 30))},
		{"90-second certificate: a second, never less", 1, 30 * time.Second, far, time.Second},
		{"a longer window than the default is not scaled up", 1, 45 * day, far, time.Hour},
		{"the certificate in use ends first: no retry", 3, 30 * day, now.Add(3 * time.Hour), 0},
		{"ends exactly then: no retry", 1, 30 * day, now.Add(time.Hour), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := NextRenewalRetry(tc.attempt, tc.renewBefore, now, tc.inUseEnds)
			if tc.want == 0 {
				if ok {
					t.Errorf("NextRenewalRetry = %v, true; want no retry", at)
				}
				return
			}
			if !ok || at.Sub(now) != tc.want {
				t.Errorf("NextRenewalRetry = %v after now, %v; want %v, true", at.Sub(now), ok, tc.want)
			}
		})
	}
}

// TestDecideSuccessor walks DESIGN.md's worked examples (3-year hosted bundle, days after T0)
// through the decision, plus the edges: late renewals and CAs that choose their own not_after.
func TestDecideSuccessor(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(days float64) time.Time { return t0.Add(time.Duration(days * float64(day))) }
	for _, tc := range []struct {
		name         string
		predSeq      int
		predNotAfter time.Time
		now          time.Time
		want         Successor
	}{
		// One-year certificates (398-day maximum): each renewal activates the next instance.
		{"398d: cert 1 → instance 2", 1, at(365), at(335), Successor{Activate, 2, at(730), at(365)}},
		{"398d: cert 2 → instance 3", 2, at(730), at(700), Successor{Activate, 3, at(1095), at(730)}},
		{"398d: cert 3 → hosting ends", 3, at(1095), at(1065), Successor{Kind: HostingEnds, TakeOver: at(1095)}},
		// 200-day maximum: re-issues inside an instance, activation at the year boundary.
		{"200d: cert 1 → re-issue in instance 1", 1, at(200), at(170), Successor{Reissue, 1, at(365), at(200)}},
		{"200d: cert 2 → instance 2", 1, at(365), at(335), Successor{Activate, 2, at(730), at(365)}},
		{"200d: cert 3 → re-issue in instance 2", 2, at(535), at(505), Successor{Reissue, 2, at(730), at(535)}},
		{"200d: cert 4 → re-issue in instance 2", 2, at(705), at(675), Successor{Reissue, 2, at(730), at(705)}},
		{"200d: cert 5 → instance 3", 2, at(730), at(712), Successor{Activate, 3, at(1095), at(730)}},
		// Late: the predecessor already expired, so the successor takes over now.
		{"late renewal takes over now", 1, at(200), at(250), Successor{Reissue, 1, at(365), at(250)}},
		{"late renewal past the year boundary", 1, at(365), at(400), Successor{Activate, 2, at(730), at(400)}},
		// A CA that ignores the requested end (ACME, 90 days) never sends a successor back.
		{"CA-chosen end inside the same year", 2, at(500), at(470), Successor{Reissue, 2, at(730), at(500)}},
		{"CA-chosen end past the subscription", 3, at(1150), at(1120), Successor{Kind: HostingEnds, TakeOver: at(1150)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DecideSuccessor(t0, 3, tc.predSeq, tc.predNotAfter, tc.now)
			if got != tc.want {
				t.Errorf("DecideSuccessor(seq %d, not_after %v, now %v) = %+v, want %+v", tc.predSeq,
					tc.predNotAfter.Sub(t0)/day, tc.now.Sub(t0)/day, got, tc.want)
			}
		})
	}
}

func TestRequestedEnd(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if got := RequestedEnd(time.Time{}, 1); !got.IsZero() {
		t.Errorf("before T0: got %v, want the zero time", got)
	}
	if got := RequestedEnd(t0, 2); !got.Equal(t0.Add(2 * Year)) {
		t.Errorf("instance 2: got %v, want %v", got, t0.Add(2*Year))
	}
}

func TestPlanRenewalInfo(t *testing.T) {
	nb := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(90 * day) // a 90-day ACME certificate: the 1/20 cut-off is 4.5 days before expiry
	at := func(d float64) time.Time { return nb.Add(time.Duration(d * float64(day))) }
	half := func(n int64) int64 { return n / 2 }
	for _, tc := range []struct {
		name    string
		window  ca.RenewalWindow
		current time.Time
		now     time.Time
		want    RenewalInfoPlan
	}{
		{"a time inside the window, rechecked after Retry-After",
			ca.RenewalWindow{Start: at(59), End: at(61), RetryAfter: 6 * time.Hour}, at(60), at(1),
			RenewalInfoPlan{RenewAt: at(60), NextCheck: at(1).Add(6 * time.Hour)}},
		{"a time outside the window moves into it",
			ca.RenewalWindow{Start: at(40), End: at(42)}, at(60), at(1),
			RenewalInfoPlan{RenewAt: at(41), NextCheck: at(1).Add(DefaultRenewalInfoRecheck)}},
		{"a window later than planned moves the renewal later",
			ca.RenewalWindow{Start: at(70), End: at(72)}, at(60), at(1),
			RenewalInfoPlan{RenewAt: at(71), NextCheck: at(1).Add(DefaultRenewalInfoRecheck)}},
		{"a window past the 1/20 cut-off is cut there",
			ca.RenewalWindow{Start: at(84), End: at(89)}, at(60), at(1),
			RenewalInfoPlan{RenewAt: at(84).Add(at(85.5).Sub(at(84)) / 2), NextCheck: at(1).Add(DefaultRenewalInfoRecheck)}},
		{"a window in the past means renew now, and no more checks",
			ca.RenewalWindow{Start: at(10), End: at(12)}, at(60), at(30),
			RenewalInfoPlan{RenewAt: at(30)}},
		{"less than 1/20 of the lifetime left: no window is trusted",
			ca.RenewalWindow{Start: at(88), End: at(89)}, at(60), at(86),
			RenewalInfoPlan{RenewAt: at(60)}},
		{"an empty window is ignored but asked again",
			ca.RenewalWindow{Start: at(61), End: at(61)}, at(60), at(1),
			RenewalInfoPlan{RenewAt: at(60), NextCheck: at(1).Add(DefaultRenewalInfoRecheck)}},
		{"no recheck after the renewal time",
			ca.RenewalWindow{Start: at(59), End: at(61), RetryAfter: 10 * day}, at(60), at(55),
			RenewalInfoPlan{RenewAt: at(60)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanRenewalInfo(tc.window, nb, na, tc.current, tc.now, half)
			if !got.RenewAt.Equal(tc.want.RenewAt) || !got.NextCheck.Equal(tc.want.NextCheck) {
				t.Errorf("got renew at day %.2f, next check %v; want day %.2f, %v",
					got.RenewAt.Sub(nb).Hours()/24, got.NextCheck, tc.want.RenewAt.Sub(nb).Hours()/24, tc.want.NextCheck)
			}
		})
	}
}

func TestRetried(t *testing.T) {
	for reason, want := range map[ca.Reason]bool{
		ca.ReasonDNS: true, ca.ReasonCAA: true, ca.ReasonOrganization: false, ca.ReasonPolicy: false,
	} {
		if got := Retried(reason); got != want {
			t.Errorf("Retried(%s) = %v, want %v", reason, got, want)
		}
	}
}
