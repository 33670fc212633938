package lifecycle

import (
	"fmt"
	"testing"
	"time"
)

// TestPlanReminder: which reminder the sweep sends at now with remind_at since, and when it looks
// again.
func TestPlanReminder(t *testing.T) {
	nb := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	na := nb.Add(Year)
	sched := ReminderSchedule(nb, na, DefaultExpiryReminderDays)
	before := func(d time.Duration) time.Time { return na.Add(-d) }
	for _, tc := range []struct {
		name       string
		since, now time.Time
		wantSend   int // days; 0 for none
		wantNext   time.Time
	}{
		{"issued, nothing due", nb, nb, 0, before(30 * day)},
		{"at the 30-day threshold", before(30 * day), before(30 * day), 30, before(14 * day)},
		{"just before it", before(30 * day), before(30*day + time.Second), 0, before(30 * day)},
		{"down across 30, 14 and 7: the latest", before(30 * day), before(5 * day), 7, before(3 * day)},
		{"thresholds before since are not sent", before(10 * day), before(10 * day), 0, before(7 * day)},
		{"the last one", before(day), before(day / 2), 1, time.Time{}},
		{"after the last, nothing more", before(day / 2), before(time.Hour), 0, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok, next, more := PlanReminder(sched, tc.since, tc.now)
			got := 0
			if ok {
				got = r.Days
			}
			if got != tc.wantSend || !next.Equal(tc.wantNext) || more != !tc.wantNext.IsZero() {
				t.Errorf("PlanReminder = send %d, next %v (more %v); want send %d, next %v", got, next, more, tc.wantSend, tc.wantNext)
			}
		})
	}
	if got := fmt.Sprint(len(ReminderSchedule(nb, nb.Add(2*time.Hour), []int{30, 14}))); got != "2" {
		t.Errorf("a 2-hour certificate has %s reminders, want 2 (scaled, never dropped while after not_before)", got)
	}
	if got := ReminderSchedule(nb, nb.Add(90*day), []int{90, 30}); len(got) != 1 || got[0].Days != 30 {
		t.Errorf("90-day certificate with 90 and 30 days: %v, want only 30 (90 falls at not_before)", got)
	}
}
