package lifecycle_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

var evReminder = lifecyclev1.EventType_EVENT_TYPE_EXPIRY_REMINDER

// reminders are the expiry_reminder events in a certificate's history, as "how long before
// not_after" each was recorded, and their reasons.
func (e *env) reminders(certID string, notAfter time.Time) (before []time.Duration, reasons []string) {
	e.t.Helper()
	for _, ev := range e.history(certID) {
		if ev.GetType() == evReminder {
			before = append(before, notAfter.Sub(ev.GetTime().AsTime()))
			reasons = append(reasons, ev.GetReason())
		}
	}
	return before, reasons
}

// accountClient is customer A's AccountService.
func (e *env) accountClient() lifecyclev1.AccountServiceClient {
	return lifecyclev1.NewAccountServiceClient(e.gs.Dial(e.t, e.keyA))
}

func reminderDaysMask() *fieldmaskpb.FieldMask {
	return &fieldmaskpb.FieldMask{Paths: []string{"expiry_reminder_days"}}
}

// TestExpiryReminderThresholds follows one non-hosted certificate from issuance past its expiry
// with the ticker running at every due time, for each lifetime and setting: it gets one reminder
// at each threshold, at its exact (scaled) time, and no other.
func TestExpiryReminderThresholds(t *testing.T) {
	t.Parallel()
	hours := func(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }
	for _, tc := range []struct {
		name     string
		validity time.Duration // the local CA's maximum: the certificate's lifetime
		days     []int32       // the account's setting; nil: the defaults
		want     []time.Duration
		wantText string // in the first reminder's reason
	}{
		{name: "one year, defaults", validity: 398 * day,
			want: []time.Duration{30 * day, 14 * day, 7 * day, 3 * day, 1 * day}, wantText: "expiry reminder: 30 days; certificate"},
		{name: "one year, 60 and 10 days", validity: 398 * day, days: []int32{10, 60},
			want: []time.Duration{60 * day, 10 * day}, wantText: "expiry reminder: 60 days;"},
		{name: "90 days, not scaled", validity: 90 * day,
			want: []time.Duration{30 * day, 14 * day, 7 * day, 3 * day, 1 * day}},
		// 6 days: renew_before is 2 days, so every threshold is scaled by 2/30.
		{name: "6 days, scaled", validity: 6 * day,
			want: []time.Duration{2 * day, hours(22.4), hours(11.2), hours(4.8), hours(1.6)}, wantText: "30 days, scaled to 48h0m0s"},
		// 47 days: renew_before is 47/3 days; 60 days would scale to 31.3 days, still inside.
		{name: "47 days, scaled, custom", validity: 47 * day, days: []int32{60, 1},
			want: []time.Duration{60 * 47 * day / 90, 47 * day / 90}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{maxValidity: tc.validity})
			if tc.days != nil {
				if _, err := e.accountClient().UpdateAccountSettings(e.ctx, &lifecyclev1.UpdateAccountSettingsRequest{
					Settings: &lifecyclev1.AccountSettings{ExpiryReminderDays: tc.days}, UpdateMask: reminderDaysMask()}); err != nil {
					t.Fatalf("UpdateAccountSettings: %v", err)
				}
			}
			b := e.buy("dv-single", dv, single, 1, 1, false)
			id := b.GetCertificates()[0].GetCertificateId()
			c := e.issue(application(id, "shop.example.com"))
			nb, na := c.GetCurrentIssuance().GetNotBefore().AsTime(), c.GetCurrentIssuance().GetNotAfter().AsTime()
			if got, want := na.Sub(nb), min(tc.validity, lifecycle.Year); got != want {
				t.Fatalf("lifetime %s, want %s", got, want)
			}
			e.advance(na.Sub(e.clk.Now())+day, nil)
			got, reasons := e.reminders(id, na)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("reminders at %v before not_after, want %v (reasons %q)", got, tc.want, reasons)
			}
			if len(reasons) > 0 && !strings.Contains(reasons[0], tc.wantText) {
				t.Errorf("first reminder's reason %q, want it to contain %q", reasons[0], tc.wantText)
			}
			if c := e.certificate(id); c.GetState() != stExpired {
				t.Errorf("certificate %s after its not_after, want EXPIRED", c.GetState())
			}
		})
	}
}

// TestExpiryReminderSuccessor: a certificate stops getting reminders once its successor is in
// place, whether the customer applied for it (non-hosted) or the service renewed it (hosted,
// renewed at its renewal time, 30 days before not_after: the tick that renews it sends no reminder).
func TestExpiryReminderSuccessor(t *testing.T) {
	t.Parallel()
	t.Run("non-hosted, successor 10 days before expiry", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{maxValidity: 398 * day})
		b := e.buy("dv-single", dv, single, 1, 2, false)
		first, second := b.GetCertificates()[0].GetCertificateId(), b.GetCertificates()[1].GetCertificateId()
		c1 := e.issue(application(first, "shop.example.com"))
		na1 := c1.GetCurrentIssuance().GetNotAfter().AsTime()
		e.advance(na1.Add(-10*day).Sub(e.clk.Now()), nil)
		if _, err := e.activate(e.a, second); err != nil {
			t.Fatalf("ActivateCertificate: %v", err)
		}
		c2 := e.issue(application(second, "shop.example.com"))
		e.advance(na1.Sub(e.clk.Now())+day, nil)
		if got, _ := e.reminders(first, na1); fmt.Sprint(got) != fmt.Sprint([]time.Duration{30 * day, 14 * day}) {
			t.Errorf("first certificate's reminders at %v before not_after, want [30 and 14 days] (none after its successor)", got)
		}
		if got, _ := e.reminders(second, c2.GetCurrentIssuance().GetNotAfter().AsTime()); len(got) != 0 {
			t.Errorf("second certificate reminded %v, months before its expiry", got)
		}
	})
	t.Run("hosted, renewed in time", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{maxValidity: 398 * day})
		b := e.buy("dv-single", dv, single, 1, 2, true)
		first := b.GetCertificates()[0].GetCertificateId()
		c1 := e.issue(application(first, "shop.example.com"))
		na1 := c1.GetCurrentIssuance().GetNotAfter().AsTime()
		e.advance(na1.Sub(e.clk.Now())+day, nil)
		if n := countEvents(e.history(first), lifecyclev1.EventType_EVENT_TYPE_SUPERSEDED); n != 1 {
			t.Fatalf("first certificate superseded %d times, want 1 (renewed)", n)
		}
		if got, _ := e.reminders(first, na1); len(got) != 0 {
			t.Errorf("renewed certificate reminded at %v before not_after, want none", got)
		}
	})
}

// TestExpiryReminderDowntimeAndRestart: reminders whose time passed while the service was down
// are sent once, the latest only; a restarted ticker over the same database sends nothing twice.
func TestExpiryReminderDowntimeAndRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	b := e.buy("dv-single", dv, single, 1, 1, false)
	id := b.GetCertificates()[0].GetCertificateId()
	na := e.issue(application(id, "shop.example.com")).GetCurrentIssuance().GetNotAfter().AsTime()
	e.advance(na.Add(-31*day).Sub(e.clk.Now()), nil)
	if got, _ := e.reminders(id, na); len(got) != 0 {
		t.Fatalf("reminders %v at 31 days before not_after, want none yet", got)
	}

	// Down from day -31 to day -6: the 30, 14 and 7-day thresholds pass without a tick.
	e.clk.Advance(25 * day)
	restarted := func() *lifecycle.Ticker {
		st := store.New(grpctest.OpenDBWith(t, e.dir, "lifecycle.db", store.DBOptions()), nil)
		return lifecycle.NewTicker(lifecycle.Config{Store: st, Clock: e.clk, Log: grpctest.Logger(t), CAs: ca.Single("local", e.ca)},
			lifecycle.TickerConfig{})
	}
	for i := range 3 {
		st, err := restarted().Tick(e.ctx, e.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 1, false: 0}[i == 0]; st.Reminders != want {
			t.Errorf("tick %d after the restart sent %d reminders, want %d", i+1, st.Reminders, want)
		}
	}
	got, reasons := e.reminders(id, na)
	if fmt.Sprint(got) != fmt.Sprint([]time.Duration{6 * day}) || !strings.Contains(reasons[0], "7 days") {
		t.Fatalf("after the downtime: reminders %v before not_after (%q), want one, the 7-day one, sent at restart (6 days before)", got, reasons)
	}

	e.advance(na.Sub(e.clk.Now())+day, nil)
	if got, _ := e.reminders(id, na); fmt.Sprint(got) != fmt.Sprint([]time.Duration{6 * day, 3 * day, day}) {
		t.Errorf("reminders %v before not_after, want [6 days (the 7-day one, late), 3 days, 1 day]", got)
	}
}

// TestAccountSettings: the defaults, an update and what it returns, the other account untouched,
// and every bad input refused with InvalidArgument naming the field.
func TestAccountSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.accountClient()
	got, err := a.GetAccountSettings(e.ctx, &lifecyclev1.GetAccountSettingsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d := got.GetSettings().GetExpiryReminderDays(); fmt.Sprint(d) != "[30 14 7 3 1]" || got.GetSettings().GetUpdateTime() != nil {
		t.Errorf("defaults %v (update_time %v), want [30 14 7 3 1] and no update_time", d, got.GetSettings().GetUpdateTime())
	}
	upd, err := a.UpdateAccountSettings(e.ctx, &lifecyclev1.UpdateAccountSettingsRequest{
		Settings: &lifecyclev1.AccountSettings{ExpiryReminderDays: []int32{7, 45, 2}}, UpdateMask: reminderDaysMask()})
	if err != nil {
		t.Fatal(err)
	}
	if d := upd.GetSettings().GetExpiryReminderDays(); fmt.Sprint(d) != "[45 7 2]" || !upd.GetSettings().GetUpdateTime().AsTime().Equal(e.clk.Now()) {
		t.Errorf("updated %v at %v, want [45 7 2] at %v", d, upd.GetSettings().GetUpdateTime().AsTime(), e.clk.Now())
	}
	got, err = a.GetAccountSettings(e.ctx, &lifecyclev1.GetAccountSettingsRequest{})
	if err != nil || fmt.Sprint(got.GetSettings().GetExpiryReminderDays()) != "[45 7 2]" {
		t.Errorf("GetAccountSettings after the update = %v, %v; want [45 7 2]", got, err)
	}
	// Another account keeps the defaults.
	c := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, grpctest.NewCaller(t, e.identity, "c", auth.RoleOwner).Key))
	if got, err := c.GetAccountSettings(e.ctx, &lifecyclev1.GetAccountSettingsRequest{}); err != nil ||
		fmt.Sprint(got.GetSettings().GetExpiryReminderDays()) != "[30 14 7 3 1]" {
		t.Errorf("another account's settings = %v, %v; want the defaults", got, err)
	}

	bad := func(s *lifecyclev1.AccountSettings, paths ...string) *lifecyclev1.UpdateAccountSettingsRequest {
		r := &lifecyclev1.UpdateAccountSettingsRequest{Settings: s}
		if paths != nil {
			r.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
		}
		return r
	}
	days := func(d ...int32) *lifecyclev1.AccountSettings {
		return &lifecyclev1.AccountSettings{ExpiryReminderDays: d}
	}
	for _, tc := range []struct {
		name    string
		req     *lifecyclev1.UpdateAccountSettingsRequest
		mention string
	}{
		{"no update_mask", bad(days(7)), "update_mask"},
		{"empty update_mask", bad(days(7), []string{}...), "update_mask"},
		{"unknown path", bad(days(7), "expiry_reminder_days", "colour"), "update_mask"},
		{"read-only path", bad(days(7), "update_time"), "update_mask"},
		{"no settings", bad(nil, "expiry_reminder_days"), "settings"},
		{"no thresholds", bad(days(), "expiry_reminder_days"), "settings.expiry_reminder_days"},
		{"zero", bad(days(7, 0), "expiry_reminder_days"), "settings.expiry_reminder_days"},
		{"negative", bad(days(-3), "expiry_reminder_days"), "settings.expiry_reminder_days"},
		{"over 90", bad(days(91), "expiry_reminder_days"), "settings.expiry_reminder_days"},
		{"twice", bad(days(7, 3, 7), "expiry_reminder_days"), "settings.expiry_reminder_days"},
		{"eleven", bad(days(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), "expiry_reminder_days"), "settings.expiry_reminder_days"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.UpdateAccountSettings(e.ctx, tc.req)
			wantRefused(t, "UpdateAccountSettings", err, codes.InvalidArgument, tc.mention)
		})
	}
	got, err = a.GetAccountSettings(e.ctx, &lifecyclev1.GetAccountSettingsRequest{})
	if err != nil || fmt.Sprint(got.GetSettings().GetExpiryReminderDays()) != "[45 7 2]" {
		t.Errorf("after the refused updates: %v, %v; want [45 7 2] unchanged", got, err)
	}
	_, err = lifecyclev1.NewAccountServiceClient(e.supportConn).GetAccountSettings(e.ctx, &lifecyclev1.GetAccountSettingsRequest{})
	wantRefused(t, "a support key reading account settings", err, codes.PermissionDenied, "")
}

// TestAccountSettingsREADMEJSON: the canonical JSON of an UpdateAccountSettings request, as the
// README gives it for SDKs (a field mask in canonical JSON is one string of lowerCamelCase paths;
// grpcurl, in the README's command, wants it as an object, which TestReadmeWalkthrough runs).
func TestAccountSettingsREADMEJSON(t *testing.T) {
	var req lifecyclev1.UpdateAccountSettingsRequest
	body := `{"settings": {"expiry_reminder_days": [60, 30, 7]}, "update_mask": "expiryReminderDays"}`
	if err := protojson.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	if got := req.GetUpdateMask().GetPaths(); fmt.Sprint(got) != "[expiry_reminder_days]" || len(req.GetSettings().GetExpiryReminderDays()) != 3 {
		t.Errorf("parsed %v, want the mask [expiry_reminder_days] and 3 thresholds", &req)
	}
}
