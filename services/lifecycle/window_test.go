package lifecycle

import (
	"database/sql"
	"testing"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/ca"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestWallTime: the first moment a wall clock reads an hour, including the hours a daylight-saving
// change skips (the moment of the jump) and repeats (the first).
func TestWallTime(t *testing.T) {
	berlin, ny := mustZone(t, "Europe/Berlin"), mustZone(t, "America/New_York")
	for _, tc := range []struct {
		name    string
		y       int
		m       time.Month
		d, hour int
		loc     *time.Location
		want    string
	}{
		{"winter", 2026, time.December, 6, 2, berlin, "2026-12-06T01:00:00Z"},
		{"summer", 2026, time.July, 5, 2, berlin, "2026-07-05T00:00:00Z"},
		{"skipped hour: the jump (02:00 CET becomes 03:00 CEST)", 2026, time.March, 29, 2, berlin, "2026-03-29T01:00:00Z"},
		{"the hour after the jump", 2026, time.March, 29, 3, berlin, "2026-03-29T01:00:00Z"},
		{"repeated hour: the first 02:00 (CEST)", 2026, time.October, 25, 2, berlin, "2026-10-25T00:00:00Z"},
		{"03:00 comes once, after the repeat (CET)", 2026, time.October, 25, 3, berlin, "2026-10-25T02:00:00Z"},
		{"hour 26: 02:00 the next day", 2026, time.October, 24, 26, berlin, "2026-10-25T00:00:00Z"},
		{"New York's skipped 02:00", 2026, time.March, 8, 2, ny, "2026-03-08T07:00:00Z"},
		{"New York's repeated 01:00 (EDT first)", 2026, time.November, 1, 1, ny, "2026-11-01T05:00:00Z"},
		{"UTC", 2026, time.December, 6, 0, time.UTC, "2026-12-06T00:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wallTime(tc.y, tc.m, tc.d, tc.hour, tc.loc); !got.Equal(utc(tc.want)) {
				t.Errorf("wallTime = %s, want %s", got.UTC().Format(time.RFC3339), tc.want)
			}
		})
	}
}

// TestWindowNext: the next moment a renewal may start, at or after t.
func TestWindowNext(t *testing.T) {
	berlin, ny := mustZone(t, "Europe/Berlin"), mustZone(t, "America/New_York")
	sundayNight := MaintenanceWindow{Days: []time.Weekday{time.Sunday}, StartHour: 2, DurationHours: 2, Zone: berlin}
	for _, tc := range []struct {
		name string
		w    MaintenanceWindow
		t    string
		want string
	}{
		{"Tuesday: the coming Sunday 02:00 CET", sundayNight, "2026-12-01T09:00:00Z", "2026-12-06T01:00:00Z"},
		{"at the opening: now", sundayNight, "2026-12-06T01:00:00Z", "2026-12-06T01:00:00Z"},
		{"inside: now", sundayNight, "2026-12-06T02:59:59Z", "2026-12-06T02:59:59Z"},
		{"at the end (exclusive): next week", sundayNight, "2026-12-06T03:00:00Z", "2026-12-13T01:00:00Z"},
		{"a second before the opening", sundayNight, "2026-12-06T00:59:59Z", "2026-12-06T01:00:00Z"},
		{"summer time: 02:00 CEST", sundayNight, "2026-07-01T00:00:00Z", "2026-07-05T00:00:00Z"},
		{"spring forward: opens at the jump, 03:00 CEST", sundayNight, "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
		{"spring forward: inside the shortened window", sundayNight, "2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z"},
		{"spring forward: ends at 04:00 CEST", sundayNight, "2026-03-29T02:00:00Z", "2026-04-05T00:00:00Z"},
		{"fall back: opens at the first 02:00 (CEST)", sundayNight, "2026-10-24T12:00:00Z", "2026-10-25T00:00:00Z"},
		{"fall back: still open at 03:30 CET", sundayNight, "2026-10-25T02:30:00Z", "2026-10-25T02:30:00Z"},
		{"fall back: ends at 04:00 CET", sundayNight, "2026-10-25T03:00:00Z", "2026-11-01T01:00:00Z"},
		{"past midnight: open on Sunday from Saturday 22:00",
			MaintenanceWindow{Days: []time.Weekday{time.Saturday}, StartHour: 22, DurationHours: 4, Zone: time.UTC},
			"2026-12-06T01:00:00Z", "2026-12-06T01:00:00Z"},
		{"past midnight: closed at 02:00, next Saturday",
			MaintenanceWindow{Days: []time.Weekday{time.Saturday}, StartHour: 22, DurationHours: 4, Zone: time.UTC},
			"2026-12-06T02:00:00Z", "2026-12-12T22:00:00Z"},
		{"several days: the nearest",
			MaintenanceWindow{Days: []time.Weekday{time.Monday, time.Friday}, StartHour: 9, DurationHours: 8, Zone: ny},
			"2026-12-01T09:00:00Z", "2026-12-04T14:00:00Z"},
		{"every day all day: always open",
			MaintenanceWindow{Days: []time.Weekday{0, 1, 2, 3, 4, 5, 6}, StartHour: 0, DurationHours: 24, Zone: berlin},
			"2026-03-29T01:30:00Z", "2026-03-29T01:30:00Z"},
		{"a window the clock skips entirely does not open that day",
			MaintenanceWindow{Days: []time.Weekday{time.Sunday}, StartHour: 2, DurationHours: 1, Zone: ny},
			"2026-03-07T12:00:00Z", "2026-03-15T06:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Next(utc(tc.t)); !got.Equal(utc(tc.want)) {
				t.Errorf("%s: Next(%s) = %s, want %s", tc.w, tc.t, got.UTC().Format(time.RFC3339), tc.want)
			}
		})
	}
}

func TestRenewalStart(t *testing.T) {
	w := &MaintenanceWindow{Days: []time.Weekday{time.Sunday}, StartHour: 2, DurationHours: 2, Zone: mustZone(t, "Europe/Berlin")}
	tuesday, sunday := utc("2026-12-01T09:00:00Z"), utc("2026-12-06T01:00:00Z")
	for _, tc := range []struct {
		name     string
		w        *MaintenanceWindow
		now      time.Time
		deadline time.Time
		want     time.Time
	}{
		{"no window: now", nil, tuesday, tuesday.Add(time.Hour), tuesday},
		{"the window opens before the deadline: then", w, tuesday, sunday.Add(time.Second), sunday},
		{"the window opens at the deadline: now", w, tuesday, sunday, tuesday},
		{"the window opens after the deadline: now", w, tuesday, tuesday.Add(2 * 24 * time.Hour), tuesday},
		{"inside the window: now", w, sunday.Add(time.Hour), sunday.Add(2 * time.Hour), sunday.Add(time.Hour)},
		{"past the deadline already: now", w, tuesday, tuesday.Add(-time.Hour), tuesday},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RenewalStart(tc.w, tc.now, tc.deadline); !got.Equal(tc.want) {
				t.Errorf("RenewalStart = %s, want %s", got, tc.want)
			}
		})
	}
}

// verdictCA is a CA client that waits d for a verdict.
type verdictCA struct {
	ca.Client
	d time.Duration
}

func (v verdictCA) VerdictTimeout() time.Duration { return v.d }

func TestWindowMargin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client ca.Client
		want   time.Duration
	}{
		{"no verdict timer: an hour", struct{ ca.Client }{}, time.Hour},
		{"a shorter verdict: an hour", verdictCA{d: 10 * time.Minute}, time.Hour},
		{"a longer verdict: the verdict", verdictCA{d: 3 * time.Hour}, 3 * time.Hour},
		{"no CA routed: an hour", nil, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := WindowMargin(tc.client); got != tc.want {
				t.Errorf("WindowMargin = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestWindowFromProto: every field is checked and named; a valid window survives the trip through
// its stored form.
func TestWindowFromProto(t *testing.T) {
	valid := func() *lifecyclev1.MaintenanceWindow {
		return &lifecyclev1.MaintenanceWindow{
			Days:      []lifecyclev1.Weekday{lifecyclev1.Weekday_WEEKDAY_SUNDAY, lifecyclev1.Weekday_WEEKDAY_MONDAY, lifecyclev1.Weekday_WEEKDAY_SUNDAY},
			StartHour: 2, DurationHours: 2, TimeZone: "Europe/Berlin",
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*lifecyclev1.MaintenanceWindow)
		field string
	}{
		{"no days", func(w *lifecyclev1.MaintenanceWindow) { w.Days = nil }, "w.days"},
		{"unspecified day", func(w *lifecyclev1.MaintenanceWindow) { w.Days[1] = lifecyclev1.Weekday_WEEKDAY_UNSPECIFIED }, "w.days"},
		{"unknown day", func(w *lifecyclev1.MaintenanceWindow) { w.Days[0] = 8 }, "w.days"},
		{"start hour 24", func(w *lifecyclev1.MaintenanceWindow) { w.StartHour = 24 }, "w.start_hour"},
		{"start hour -1", func(w *lifecyclev1.MaintenanceWindow) { w.StartHour = -1 }, "w.start_hour"},
		{"duration 0", func(w *lifecyclev1.MaintenanceWindow) { w.DurationHours = 0 }, "w.duration_hours"},
		{"duration 25", func(w *lifecyclev1.MaintenanceWindow) { w.DurationHours = 25 }, "w.duration_hours"},
		{"no zone", func(w *lifecyclev1.MaintenanceWindow) { w.TimeZone = "" }, "w.time_zone"},
		{"unknown zone", func(w *lifecyclev1.MaintenanceWindow) { w.TimeZone = "Europe/Atlantis" }, "w.time_zone"},
		{"Local", func(w *lifecyclev1.MaintenanceWindow) { w.TimeZone = "Local" }, "w.time_zone"},
		{"a path", func(w *lifecyclev1.MaintenanceWindow) { w.TimeZone = "../../etc/passwd" }, "w.time_zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := valid()
			tc.edit(p)
			_, err := windowFromProto("w", p)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}

	w, err := windowFromProto("w", valid())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.String(), "Monday,Sunday 02:00 for 2h, Europe/Berlin"; got != want {
		t.Errorf("window = %q, want %q (days sorted, without repeats)", got, want)
	}
	col := windowColumn(w)
	back, err := windowOf(col)
	if err != nil || back.String() != w.String() {
		t.Errorf("stored as %s, read back as %v (%v)", col.String, back, err)
	}
	p := windowProtoOf(col)
	if got := p.GetDays(); len(got) != 2 || got[0] != lifecyclev1.Weekday_WEEKDAY_MONDAY || got[1] != lifecyclev1.Weekday_WEEKDAY_SUNDAY ||
		p.GetStartHour() != 2 || p.GetDurationHours() != 2 || p.GetTimeZone() != "Europe/Berlin" {
		t.Errorf("windowProto = %v", p)
	}
	if w, err := windowOf(sql.NullString{}); w != nil || err != nil {
		t.Errorf("no stored window reads as %v, %v; want nil", w, err)
	}
	if _, err := windowOf(sql.NullString{String: `{"days":["Someday"],"time_zone":"UTC"}`, Valid: true}); err == nil {
		t.Error("an unknown stored day was read")
	}
}
