package lifecycle

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ca"
)

// MaintenanceWindow restricts a hosted bundle's automatic renewals to weekly windows: on each of
// Days, from StartHour for DurationHours by the wall clock of Zone. A window that runs past
// midnight belongs to the day it starts on.
type MaintenanceWindow struct {
	Days          []time.Weekday
	StartHour     int // 0–23
	DurationHours int // 1–24
	Zone          *time.Location
}

// minWindowMargin is the least time between a window's opening and the renewal's escalation for
// the window to count: a renewal started later than escalation minus the margin would reach a
// person as a late renewal before the CA had a chance to decide. The CA's verdict timeout
// (ca.VerdictTimer) replaces it when longer.
const minWindowMargin = time.Hour

// WindowMargin is how long before the escalation a window must open to be waited for: the CA's
// verdict timeout, at least minWindowMargin.
func WindowMargin(client ca.Client) time.Duration {
	if vt, ok := client.(ca.VerdictTimer); ok {
		return max(minWindowMargin, vt.VerdictTimeout())
	}
	return minWindowMargin
}

// Next is the earliest moment at or after t inside one of the windows: t itself when a window is
// open at t, else the start of the next window. Windows are computed from the local calendar date,
// so a daylight-saving change moves them with the wall clock (see wallTime).
func (w MaintenanceWindow) Next(t time.Time) time.Time {
	local := t.In(w.Zone)
	var next time.Time
	// The window that started yesterday may still be open (it runs past midnight); eight days
	// ahead hold the next opening of any day, even when the clock skips the whole window of the
	// first one.
	for off := -1; off <= 8; off++ {
		day := time.Date(local.Year(), local.Month(), local.Day()+off, 12, 0, 0, 0, w.Zone)
		if !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		from := wallTime(day.Year(), day.Month(), day.Day(), w.StartHour, w.Zone)
		to := wallTime(day.Year(), day.Month(), day.Day(), w.StartHour+w.DurationHours, w.Zone)
		if !from.Before(to) {
			continue // the clock skips the whole window that day (a daylight-saving change)
		}
		if !t.Before(from) && t.Before(to) {
			return t
		}
		if from.After(t) && (next.IsZero() || from.Before(next)) {
			next = from
		}
	}
	return next
}

// wallTime is the first moment whose wall clock in loc reads hour:00 of the date or later (hour
// may be 24 or more: the following days). It is exact across daylight-saving changes, where
// time.Date may pick either reading: when the clock skips the hour it is the moment of the jump,
// and when the hour comes twice it is the first.
func wallTime(year int, month time.Month, day, hour int, loc *time.Location) time.Time {
	want := time.Date(year, month, day, hour, 0, 0, 0, time.UTC) // the reading, as if in UTC
	guess := time.Date(year, month, day, hour, 0, 0, 0, loc)
	// Every moment that reads want has the offset of a zone in force near it: try the offsets of a
	// day before and after (changes of a zone's offset are months apart).
	var best time.Time
	for _, probe := range []time.Time{guess.Add(-24 * time.Hour), guess, guess.Add(24 * time.Hour)} {
		_, offset := probe.Zone()
		at := want.Add(-time.Duration(offset) * time.Second)
		if reading(at.In(loc)).Equal(want) && (best.IsZero() || at.Before(best)) {
			best = at
		}
	}
	if !best.IsZero() {
		return best
	}
	// No moment reads want: the clock jumps over it, at a boundary of guess's zone.
	start, end := guess.ZoneBounds()
	if reading(guess).After(want) {
		return start
	}
	return end
}

// reading is t's wall clock reading as a time in UTC, to compare readings.
func reading(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// RenewalStart decides when a hosted certificate's renewal, due at now, starts: now when the
// bundle has no window (w nil), when a window is open, or when the next window opens no earlier
// than deadline (the escalation minus WindowMargin): waiting would risk the certificate. Otherwise
// it is the next window's opening.
func RenewalStart(w *MaintenanceWindow, now, deadline time.Time) time.Time {
	if w == nil {
		return now
	}
	if next := w.Next(now); !next.IsZero() && next.Before(deadline) {
		return next
	}
	return now
}

// Weekday numbers in the API (lifecyclev1.Weekday, Monday first) and in Go (Sunday is 0).
func weekdayFromProto(d lifecyclev1.Weekday) (time.Weekday, bool) {
	if d < lifecyclev1.Weekday_WEEKDAY_MONDAY || d > lifecyclev1.Weekday_WEEKDAY_SUNDAY {
		return 0, false
	}
	return time.Weekday(d % 7), true
}

func weekdayProto(d time.Weekday) lifecyclev1.Weekday {
	if d == time.Sunday {
		return lifecyclev1.Weekday_WEEKDAY_SUNDAY
	}
	return lifecyclev1.Weekday(d)
}

// windowFromProto checks a maintenance window field by field (field names the request's field)
// and returns it, its days sorted Monday first and without repeats.
func windowFromProto(field string, p *lifecyclev1.MaintenanceWindow) (*MaintenanceWindow, error) {
	if len(p.GetDays()) == 0 {
		return nil, apierr.InvalidArgument(field+".days", "needs at least one day")
	}
	w := &MaintenanceWindow{StartHour: int(p.GetStartHour()), DurationHours: int(p.GetDurationHours())}
	for i, d := range p.GetDays() {
		wd, ok := weekdayFromProto(d)
		if !ok {
			return nil, apierr.InvalidArgument(field+".days", "day %d is %s, not a day of the week", i, d)
		}
		w.Days = append(w.Days, wd)
	}
	// Monday first, as the API numbers them.
	slices.SortFunc(w.Days, func(a, b time.Weekday) int { return int(weekdayProto(a)) - int(weekdayProto(b)) })
	w.Days = slices.Compact(w.Days)
	if w.StartHour < 0 || w.StartHour > 23 {
		return nil, apierr.InvalidArgument(field+".start_hour", "must be 0 to 23, got %d", w.StartHour)
	}
	if w.DurationHours < 1 || w.DurationHours > 24 {
		return nil, apierr.InvalidArgument(field+".duration_hours", "must be 1 to 24, got %d", w.DurationHours)
	}
	zone := p.GetTimeZone()
	if zone == "" {
		return nil, apierr.InvalidArgument(field+".time_zone", `is required (an IANA name such as "Europe/Berlin" or "UTC")`)
	}
	// time.LoadLocation also reads "Local" and file paths relative to the zone database: only
	// plain IANA names are taken.
	loc, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return nil, apierr.InvalidArgument(field+".time_zone", "%q is not a known IANA time zone", zone)
	}
	w.Zone = loc
	return w, nil
}

// windowProtoOf is a bundle's stored window as the API shows it: nil for none, or when the
// stored text cannot be read (windowOf reports that, where renewals start). It does not load the
// zone: a list of bundles costs no zone database reads.
func windowProtoOf(col sql.NullString) *lifecyclev1.MaintenanceWindow {
	r, days, err := readWindow(col)
	if err != nil || !col.Valid {
		return nil
	}
	out := &lifecyclev1.MaintenanceWindow{StartHour: int32(r.StartHour), DurationHours: int32(r.DurationHours), TimeZone: r.TimeZone}
	for _, d := range days {
		out.Days = append(out.Days, weekdayProto(d))
	}
	return out
}

// windowRow is a window as stored in bundles.maintenance_window (JSON text, days by English name).
type windowRow struct {
	Days          []string `json:"days"`
	StartHour     int      `json:"start_hour"`
	DurationHours int      `json:"duration_hours"`
	TimeZone      string   `json:"time_zone"`
}

// windowColumn is w as stored: NULL for no window.
func windowColumn(w *MaintenanceWindow) sql.NullString {
	if w == nil {
		return sql.NullString{}
	}
	r := windowRow{StartHour: w.StartHour, DurationHours: w.DurationHours, TimeZone: w.Zone.String()}
	for _, d := range w.Days {
		r.Days = append(r.Days, d.String())
	}
	text, _ := json.Marshal(r) // strings and ints: cannot fail
	return sql.NullString{String: string(text), Valid: true}
}

// readWindow parses a stored window (nothing for NULL) and its days.
func readWindow(col sql.NullString) (windowRow, []time.Weekday, error) {
	var r windowRow
	if !col.Valid {
		return r, nil, nil
	}
	if err := json.Unmarshal([]byte(col.String), &r); err != nil {
		return r, nil, fmt.Errorf("maintenance window %q: %w", col.String, err)
	}
	var days []time.Weekday
	for _, name := range r.Days {
		d := time.Sunday
		for d <= time.Saturday && d.String() != name {
			d++
		}
		if d > time.Saturday {
			return r, nil, fmt.Errorf("maintenance window %q: day %q", col.String, name)
		}
		days = append(days, d)
	}
	return r, days, nil
}

// windowOf reads a bundle's stored window: nil for none. An error means the stored text or its
// zone cannot be read (a zone database without the zone).
func windowOf(col sql.NullString) (*MaintenanceWindow, error) {
	r, days, err := readWindow(col)
	if err != nil || !col.Valid {
		return nil, err
	}
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("maintenance window %q: %w", col.String, err)
	}
	return &MaintenanceWindow{Days: days, StartHour: r.StartHour, DurationHours: r.DurationHours, Zone: loc}, nil
}

// String describes w for logs and the audit log, for example "Sunday 02:00 for 2h, Europe/Berlin".
func (w MaintenanceWindow) String() string {
	days := ""
	for i, d := range w.Days {
		if i > 0 {
			days += ","
		}
		days += d.String()
	}
	return fmt.Sprintf("%s %02d:00 for %dh, %s", days, w.StartHour, w.DurationHours, w.Zone)
}
