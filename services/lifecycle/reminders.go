package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Expiry reminders (docs/lifecycle.md, "Expiry reminders"). Every certificate without a successor
// yet, hosted or not, gets one expiry_reminder history event at each of its account's thresholds
// (30, 14, 7, 3 and 1 days before not_after by default), scaled down for short certificates the
// way RenewBefore is. The delivery of the events (webhooks, e-mail) reads them from the events
// table like any other history event.
//
// Each instance's remind_at column is when the ticker next looks at it: set to the issuance time
// when a certificate is placed (placeIssued), then to the next threshold by the remind sweep. The
// sweep sends the latest threshold in [remind_at, now] (so a service that was down sends only the
// latest threshold it missed, once) and moves remind_at past now in the same transaction as the
// event, so a reminder is sent once, across restarts. A certificate with a successor, or no longer
// valid, has its remind_at cleared and gets no more reminders.

// DefaultExpiryReminderDays are the reminder thresholds of an account that set none.
var DefaultExpiryReminderDays = []int{30, 14, 7, 3, 1}

// Limits of the expiry_reminder_days setting.
const (
	maxReminderDays       = 90
	maxReminderThresholds = 10
)

// Reminder is one reminder threshold of a certificate: the days it was set as, and when it is due.
type Reminder struct {
	Days int
	At   time.Time
}

// ReminderSchedule is the reminders of a certificate valid [notBefore, notAfter) with thresholds
// days, earliest first. A threshold is scaled like RenewBefore: days × RenewBefore(lifetime)/30
// days, so a 90-day or longer certificate is reminded at the days as given and a 6-day one at a
// fifteenth of them (30 days → 2 days). A threshold that would fall at or before notBefore is
// dropped, and thresholds that scale to the same time are sent once.
func ReminderSchedule(notBefore, notAfter time.Time, days []int) []Reminder {
	lifetime := notAfter.Sub(notBefore)
	if lifetime <= 0 {
		return nil
	}
	renewBefore := RenewBefore(lifetime, 0)
	var out []Reminder
	for _, d := range days {
		offset := time.Duration(d) * renewBefore / time.Duration(maxRenewBefore/oneDay)
		at := notAfter.Add(-offset)
		if d <= 0 || !at.After(notBefore) {
			continue
		}
		out = append(out, Reminder{Days: d, At: at})
	}
	slices.SortFunc(out, func(a, b Reminder) int { return a.At.Compare(b.At) })
	return slices.CompactFunc(out, func(a, b Reminder) bool { return a.At.Equal(b.At) })
}

// PlanReminder decides the remind sweep's work for a certificate whose reminders are sched, looked
// at now with remind_at since: the reminder to send (the latest due in [since, now]; ok false for
// none) and when to look again (the first threshold after now; more false when none is left).
func PlanReminder(sched []Reminder, since, now time.Time) (send Reminder, ok bool, next time.Time, more bool) {
	for _, r := range sched {
		switch {
		case r.At.After(now):
			return send, ok, r.At, true
		case !r.At.Before(since):
			send, ok = r, true
		}
	}
	return send, ok, time.Time{}, false
}

// hasSuccessor reports whether another instance of the bundle holds a valid certificate that ends
// after c's: c's successor is in place, and c needs no reminder.
func hasSuccessor(c store.Certificate, certs []store.Certificate) bool {
	for _, o := range certs {
		if o.ID != c.ID && (o.State == state.Hosted || o.State == state.Issued) && o.CurrentIssuanceID.Valid &&
			o.ExpireAt.Valid && o.ExpireAt.Int64 > c.ExpireAt.Int64 {
			return true
		}
	}
	return false
}

// reminderDays is the account's thresholds (the defaults when it set none).
func reminderDays(as store.AccountSettings, ok bool) []int {
	if !ok || len(as.ExpiryReminderDays) == 0 {
		return DefaultExpiryReminderDays
	}
	return as.ExpiryReminderDays
}

// remind sends the expiry reminders due at now (SweepRemind).
func (t *Ticker) remind(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "remind", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepRemind, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		return t.write(ctx, now, func(tx *store.Tx) error {
			cur, err := tx.Certificate(c.ID)
			if err != nil || !cur.RemindAt.Valid || cur.RemindAt.Int64 > db.Micros(now) {
				return err // changed since it was read: nothing to do
			}
			was := cur.RemindAt
			since := db.FromMicros(cur.RemindAt.Int64)
			cur.RemindAt = sql.NullInt64{}
			sent, err := t.remindOne(tx, &cur, since, now)
			if err != nil {
				return err
			}
			if sent {
				mu.Lock()
				st.Reminders++
				mu.Unlock()
			}
			return tx.SaveRemindAt(&cur, was)
		})
	})
}

// remindOne records cur's reminder due at now, if any, and sets its next remind_at. A certificate
// that is no longer valid, or has a successor, gets neither.
func (t *Ticker) remindOne(tx *store.Tx, cur *store.Certificate, since, now time.Time) (sent bool, err error) {
	if (cur.State != state.Hosted && cur.State != state.Issued) || !cur.CurrentIssuanceID.Valid || !cur.ExpireAt.Valid ||
		cur.ExpireAt.Int64 <= db.Micros(now) {
		return false, nil
	}
	certs, err := tx.Certificates(cur.BundleID)
	if err != nil || hasSuccessor(*cur, certs) {
		return false, err
	}
	iss, err := tx.Issuance(cur.CurrentIssuanceID.String)
	if err != nil {
		return false, err
	}
	as, ok, err := tx.AccountSettings(cur.AccountID)
	if err != nil {
		return false, err
	}
	notAfter := db.FromMicros(iss.NotAfter)
	r, send, next, more := PlanReminder(ReminderSchedule(db.FromMicros(iss.NotBefore), notAfter, reminderDays(as, ok)), since, now)
	if more {
		cur.RemindAt = db.NullMicros(next)
	}
	if !send {
		return false, nil
	}
	return true, tx.Event(store.Event{AccountID: cur.AccountID, BundleID: cur.BundleID, CertificateID: cur.ID,
		Type: store.EventExpiryReminder, From: cur.State, To: cur.State, Actor: state.ActorTicker,
		Reason: reminderReason(r, notAfter, iss.Serial)})
}

// firstReminder plans the first expiry reminder of cert, whose certificate iss placeIssued has just
// put in use at now, in state placed (cert.RemindAt is now): it sets remind_at to what the remind
// sweep would set looking at cert at now, when that sweep would send nothing, so a renewal does not cost a sweep
// transaction of its own to learn its first threshold. It leaves remind_at at now, for the sweep
// to decide, when a reminder is due at now already or another instance's certificate outlives
// cert's. certs are the bundle's instances as read before the placement: the only changes the
// placement makes to them (predecessors HOSTED to ISSUED) do not change what hasSuccessor says.
func firstReminder(tx *store.Tx, cert *store.Certificate, placed state.State, certs []store.Certificate, iss store.Issuance,
	now time.Time) error {
	if (placed != state.Hosted && placed != state.Issued) || iss.NotAfter <= db.Micros(now) ||
		hasSuccessor(*cert, certs) {
		return nil
	}
	as, ok, err := tx.AccountSettings(cert.AccountID)
	if err != nil {
		return err
	}
	sched := ReminderSchedule(db.FromMicros(iss.NotBefore), db.FromMicros(iss.NotAfter), reminderDays(as, ok))
	if _, send, next, more := PlanReminder(sched, now, now); !send {
		cert.RemindAt = sql.NullInt64{}
		if more {
			cert.RemindAt = db.NullMicros(next)
		}
	}
	return nil
}

// reminderReason is the reminder event's reason: the threshold ("7 days"), when the certificate
// expires, and the serial.
func reminderReason(r Reminder, notAfter time.Time, serial string) string {
	unit := "days"
	if r.Days == 1 {
		unit = "day"
	}
	left := notAfter.Sub(r.At).Round(time.Minute)
	scaled := ""
	if left != time.Duration(r.Days)*oneDay {
		scaled = fmt.Sprintf(", scaled to %s for this short certificate", left)
	}
	return fmt.Sprintf("expiry reminder: %d %s%s; certificate %s expires at %s and has no successor yet",
		r.Days, unit, scaled, serial, notAfter.UTC().Format(time.RFC3339))
}
