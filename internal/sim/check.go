package sim

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle"
)

// issuanceRow is one issued certificate with what the checks need of its bundle.
type issuanceRow struct {
	IssuanceID    string        `db:"issuance_id"`
	BundleID      string        `db:"bundle_id"`
	CertificateID string        `db:"certificate_id"`
	NotBefore     int64         `db:"not_before"`
	NotAfter      int64         `db:"not_after"`
	Hosting       bool          `db:"hosting"`
	Years         int           `db:"subscription_years"`
	T0            sql.NullInt64 `db:"t0"`
}

// check reads the outcome from the lifecycle database and fills in the counts of r. An expiry is
// a certificate whose not_after passed (before end) with no other certificate of its bundle valid
// at that moment. One at the end of its subscription is expected; any other must have had, at
// least escalate_before (of its lifetime) earlier, a notification (n) and, when hosted, a support
// case; otherwise it is a silent expiry. A coverage gap is time of a hosted bundle's subscription
// (up to end) that none of its certificates covered, counted for bundles whose records stayed.
func check(ctx context.Context, d *db.DB, n Notifications, end time.Time, lost map[string]bool, r *Result) error {
	var rows []issuanceRow
	if err := d.Select(ctx, &rows, `SELECT i.issuance_id, i.bundle_id, i.certificate_id, i.not_before, i.not_after, b.hosting,
		b.subscription_years, b.t0 FROM issuances i JOIN bundles b ON b.bundle_id = i.bundle_id ORDER BY i.bundle_id, i.not_before`); err != nil {
		return err
	}
	byBundle := map[string][]issuanceRow{}
	var order []string
	for _, row := range rows {
		if _, ok := byBundle[row.BundleID]; !ok {
			order = append(order, row.BundleID)
		}
		byBundle[row.BundleID] = append(byBundle[row.BundleID], row)
	}
	r.Issuances, r.Renewals = len(rows), len(rows)-len(byBundle)
	for _, q := range []struct {
		dst *int
		sql string
	}{
		{&r.Cases, `SELECT COUNT(*) FROM support_cases`},
		{&r.Reminders, `SELECT COUNT(*) FROM events WHERE type = 'expiry_reminder'`},
	} {
		if err := d.Get(ctx, q.dst, q.sql); err != nil {
			return err
		}
	}
	// The support cases by bundle, read once.
	var caseRows []struct {
		BundleID   string `db:"bundle_id"`
		CreateTime int64  `db:"create_time"`
	}
	if err := d.Select(ctx, &caseRows, `SELECT bundle_id, create_time FROM support_cases`); err != nil {
		return err
	}
	cases := map[string][]int64{}
	for _, c := range caseRows {
		cases[c.BundleID] = append(cases[c.BundleID], c.CreateTime)
	}
	endMicros := db.Micros(end)
	for _, id := range order {
		iss := byBundle[id]
		first := iss[0]
		subEnd := db.FromMicros(first.T0.Int64).Add(time.Duration(first.Years) * lifecycle.Year)
		for _, c := range iss {
			if c.NotAfter > endMicros || successorAt(iss, c) {
				continue
			}
			r.Expiries++
			na, nb := db.FromMicros(c.NotAfter), db.FromMicros(c.NotBefore)
			if !na.Before(subEnd.Add(-time.Hour)) {
				r.ExpiriesAtSubscriptionEnd++
				continue
			}
			if lost[id] {
				r.ExpiriesRecordsRemoved++
			}
			lifetime := na.Sub(nb)
			deadline := na.Add(-lifecycle.EscalateBefore(lifetime, lifecycle.RenewBefore(lifetime, 0)))
			notified, err := n.NotifiedBy(ctx, id, c.CertificateID, nb, deadline)
			if err != nil {
				return err
			}
			cased := !c.Hosting
			for _, at := range cases[id] {
				cased = cased || (at >= c.NotBefore && at <= db.Micros(deadline))
			}
			if !notified || !cased {
				r.SilentExpiries++
				if len(r.Silent) < 10 {
					r.Silent = append(r.Silent, fmt.Sprintf("bundle %s certificate %s (hosted %v) expired %s: notified %v, case %v by %s",
						id, c.CertificateID, c.Hosting, na.Format(time.RFC3339), notified, cased, deadline.Format(time.RFC3339)))
				}
			}
		}
		if !first.Hosting || lost[id] || !first.T0.Valid {
			continue
		}
		windowEnd := min(db.Micros(subEnd), endMicros)
		periods := make([][2]int64, len(iss))
		for i, c := range iss {
			periods[i] = [2]int64{c.NotBefore, c.NotAfter}
		}
		want := time.Duration(windowEnd-first.T0.Int64) * time.Microsecond
		if got := lifecycle.Covered(periods, first.T0.Int64, windowEnd); got < want {
			r.CoverageGaps++
			r.GapTime += want - got
		}
	}
	return nil
}

// successorAt reports whether another certificate of the bundle is valid when c expires.
func successorAt(iss []issuanceRow, c issuanceRow) bool {
	for _, o := range iss {
		if o.IssuanceID != c.IssuanceID && o.NotBefore <= c.NotAfter && o.NotAfter > c.NotAfter {
			return true
		}
	}
	return false
}
