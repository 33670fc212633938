package lifecycle_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

// updateBundle sends req as customer A and fails the test if it is refused.
func (e *env) updateBundle(req *lifecyclev1.UpdateBundleRequest) *lifecyclev1.Bundle {
	e.t.Helper()
	resp, err := e.a.UpdateBundle(e.ctx, req)
	if err != nil {
		e.t.Fatalf("UpdateBundle(%v): %v", req, err)
	}
	return resp.GetBundle()
}

// renewalsStarted are the times of a certificate's RENEWAL_STARTED events.
func (e *env) renewalsStarted(certID string) []time.Time {
	e.t.Helper()
	var out []time.Time
	for _, ev := range e.history(certID) {
		if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED {
			out = append(out, ev.GetTime().AsTime())
		}
	}
	return out
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// weekdayAfter is the API's day n days after t's day in loc.
func weekdayAfter(t time.Time, loc *time.Location, n int) lifecyclev1.Weekday {
	d := (int(t.In(loc).Weekday()) + n) % 7
	if d == 0 {
		return lifecyclev1.Weekday_WEEKDAY_SUNDAY
	}
	return lifecyclev1.Weekday(d)
}

// TestMaintenanceWindowRenewsInside: with a window of Sundays 02:00–04:00 in Berlin, the hosted
// certificate's renewal waits past its renewal time for the next Sunday night, starts inside the
// window, and the successor is issued.
func TestMaintenanceWindowRenewsInside(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	loc := berlin(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	iss := e.certificate(cert).GetCurrentIssuance()
	renewAt := iss.GetNotAfter().AsTime().Add(-30 * day) // the default for a 200-day certificate

	window := &lifecyclev1.MaintenanceWindow{Days: []lifecyclev1.Weekday{lifecyclev1.Weekday_WEEKDAY_SUNDAY},
		StartHour: 2, DurationHours: 2, TimeZone: "Europe/Berlin"}
	got := e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), MaintenanceWindow: window})
	if !proto.Equal(got.GetMaintenanceWindow(), window) || !proto.Equal(e.bundle(b.GetBundleId()).GetMaintenanceWindow(), window) {
		t.Fatalf("UpdateBundle shows window %v, GetBundle %v; want %v", got.GetMaintenanceWindow(),
			e.bundle(b.GetBundleId()).GetMaintenanceWindow(), window)
	}
	if got.GetRenewBefore() != nil || !e.certificate(cert).GetRenewTime().AsTime().Equal(renewAt) {
		t.Fatalf("setting the window changed renew_before to %v or the renewal time by %s", got.GetRenewBefore(),
			e.certificate(cert).GetRenewTime().AsTime().Sub(renewAt))
	}

	// The first Sunday 02:00 in Berlin at or after the renewal time (summer time then).
	sunday := renewAt.In(loc)
	for sunday.Weekday() != time.Sunday || time.Date(sunday.Year(), sunday.Month(), sunday.Day(), 2, 0, 0, 0, loc).Before(renewAt) {
		sunday = sunday.AddDate(0, 0, 1)
	}
	opening := time.Date(sunday.Year(), sunday.Month(), sunday.Day(), 2, 0, 0, 0, loc)
	if renewAt.In(loc).Weekday() == time.Sunday {
		t.Fatalf("the renewal time %s is on a Sunday: the test means it to fall outside the window", renewAt.In(loc))
	}

	// Past the renewal time the renewal has not started: it waits for the window.
	e.advance(renewAt.Sub(e.clk.Now())+time.Minute, nil)
	if started := e.renewalsStarted(cert); len(started) != 0 {
		t.Fatalf("the renewal started at %v, outside the window", started)
	}
	if at := e.certificate(cert).GetRenewTime().AsTime(); !at.Equal(opening) {
		t.Errorf("renew_time is %s, want the window's opening %s", at.In(loc), opening)
	}

	e.advance(opening.Sub(e.clk.Now())+3*time.Hour, nil)
	started := e.renewalsStarted(cert)
	if len(started) != 1 {
		t.Fatalf("%d renewals started by %s, want 1", len(started), e.clk.Now())
	}
	at := started[0].In(loc)
	if at.Weekday() != time.Sunday || at.Hour() < 2 || at.Hour() >= 4 {
		t.Errorf("the renewal started at %s, outside Sunday 02:00–04:00 Europe/Berlin", at)
	}
	if at.Sub(opening) > time.Minute {
		t.Errorf("the renewal started %s after the window opened, want within a minute", at.Sub(opening))
	}
	if c := e.certificate(cert); c.GetState() != stHosted || c.GetCurrentIssuance().GetIssuanceId() == iss.GetIssuanceId() {
		t.Errorf("after the window: %s with issuance %s, want HOSTED with the successor", c.GetState(), c.GetCurrentIssuance().GetIssuanceId())
	}
	if n := len(e.cases(e.support)); n != 0 {
		t.Errorf("%d support cases opened, want none (the renewal came before its escalation)", n)
	}
}

// TestMaintenanceWindowTooLate: when the next window would open after the escalation (less than
// the margin before it), the renewal starts at its renewal time rather than risk the certificate.
func TestMaintenanceWindowTooLate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	loc := berlin(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	notAfter := e.certificate(cert).GetCurrentIssuance().GetNotAfter().AsTime()
	// renew_before 2 days: the escalation comes a day before expiry, so the renewal can wait only
	// 23 hours (a day less the CA's 1-hour verdict margin). The window opens only three days after
	// the renewal time's day.
	renewAt := notAfter.Add(-2 * day)
	window := &lifecyclev1.MaintenanceWindow{Days: []lifecyclev1.Weekday{weekdayAfter(renewAt, loc, 3)},
		StartHour: 2, DurationHours: 2, TimeZone: "Europe/Berlin"}
	got := e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(2 * day),
		MaintenanceWindow: window})
	if got.GetRenewBefore().AsDuration() != 2*day || !proto.Equal(got.GetMaintenanceWindow(), window) {
		t.Fatalf("UpdateBundle shows renew_before %v and window %v", got.GetRenewBefore(), got.GetMaintenanceWindow())
	}

	e.advance(renewAt.Sub(e.clk.Now())-time.Minute, nil)
	if started := e.renewalsStarted(cert); len(started) != 0 {
		t.Fatalf("the renewal started at %v, before its time", started)
	}
	e.advance(2*time.Minute, nil)
	started := e.renewalsStarted(cert)
	if len(started) != 1 || started[0].Sub(renewAt) < 0 || started[0].Sub(renewAt) > time.Minute {
		t.Fatalf("renewals started at %v, want one at the renewal time %s", started, renewAt)
	}
}

// TestMaintenanceWindowInvalid: a malformed window, or one that would not open before the
// escalation, is refused naming the field, and changes nothing; clearing the window keeps
// renew_before.
func TestMaintenanceWindowInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	loc := berlin(t)
	b, _ := e.hosting()
	id := b.GetBundleId()
	cert := b.GetCertificates()[0].GetCertificateId()
	e.renewBefore(id, durationpb.New(2*day))
	renewAt := e.certificate(cert).GetRenewTime().AsTime()
	// An hour before the renewal time, the escalation is a day away.
	e.advance(renewAt.Sub(e.clk.Now())-time.Hour, nil)

	window := func(edit func(w *lifecyclev1.MaintenanceWindow)) *lifecyclev1.MaintenanceWindow {
		w := &lifecyclev1.MaintenanceWindow{Days: []lifecyclev1.Weekday{lifecyclev1.Weekday_WEEKDAY_SUNDAY, lifecyclev1.Weekday_WEEKDAY_WEDNESDAY},
			StartHour: 2, DurationHours: 2, TimeZone: "Europe/Berlin"}
		if edit != nil {
			edit(w)
		}
		return w
	}
	for _, tc := range []struct {
		name  string
		req   *lifecyclev1.UpdateBundleRequest
		field string
	}{
		{"unknown zone", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.TimeZone = "Mars/Olympus_Mons"
		})}, "maintenance_window.time_zone"},
		{"no zone", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.TimeZone = ""
		})}, "maintenance_window.time_zone"},
		{"no days", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.Days = nil
		})}, "maintenance_window.days"},
		{"an unspecified day", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.Days = append(w.Days, lifecyclev1.Weekday_WEEKDAY_UNSPECIFIED)
		})}, "maintenance_window.days"},
		{"start hour 24", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.StartHour = 24
		})}, "maintenance_window.start_hour"},
		{"no duration", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.DurationHours = 0
		})}, "maintenance_window.duration_hours"},
		{"25 hours", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.DurationHours = 25
		})}, "maintenance_window.duration_hours"},
		{"no window before the escalation", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(func(w *lifecyclev1.MaintenanceWindow) {
			w.Days = []lifecyclev1.Weekday{weekdayAfter(e.clk.Now(), loc, 3)}
		})}, "maintenance_window"},
		{"set and clear", &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(nil), ClearMaintenanceWindow: true},
			"clear_maintenance_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.UpdateBundle(e.ctx, tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	if _, err := e.b.UpdateBundle(e.ctx, &lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: window(nil)}); status.Code(err) != codes.NotFound {
		t.Errorf("another account's UpdateBundle = %v, want NotFound", err)
	}
	check := func(what string, wantWindow *lifecyclev1.MaintenanceWindow) {
		t.Helper()
		got := e.bundle(id)
		if !proto.Equal(got.GetMaintenanceWindow(), wantWindow) || got.GetRenewBefore().AsDuration() != 2*day ||
			!e.certificate(cert).GetRenewTime().AsTime().Equal(renewAt) {
			t.Errorf("%s: window %v (want %v), renew_before %v (want 2 days), renew_time moved by %s", what,
				got.GetMaintenanceWindow(), wantWindow, got.GetRenewBefore().AsDuration(), e.certificate(cert).GetRenewTime().AsTime().Sub(renewAt))
		}
	}
	check("after the refusals", nil)

	// Every hour of every day is a window that is open now; clearing it alone keeps renew_before.
	always := &lifecyclev1.MaintenanceWindow{Days: []lifecyclev1.Weekday{1, 2, 3, 4, 5, 6, 7}, StartHour: 0, DurationHours: 24, TimeZone: "UTC"}
	e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: id, MaintenanceWindow: always})
	check("set", always)
	e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: id, ClearMaintenanceWindow: true})
	check("cleared", nil)
}
