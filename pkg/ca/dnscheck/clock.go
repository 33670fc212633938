package dnscheck

import (
	"context"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
)

// Clock is an application's DNS verdict clock, kept in its CA's database so that a restart (or
// another replica) carries on counting where the last poll stopped.
//
// AbsentFor adds up the time between consecutive polls that both had answers showing a record
// absent: a stretch starts at an answered poll and grows with each answered poll after it. A poll
// whose lookups failed ends the stretch; the next answered poll starts a new one. So the time a
// resolver was unreachable never counts towards a verdict, while the time the service itself was
// down between two answered polls does (both answers said "absent", and nothing said otherwise).
type Clock struct {
	// AbsentFor is how long resolvers have answered that the records are absent.
	AbsentFor time.Duration
	// Failures counts the consecutive polls whose lookups failed (0 after an answered poll).
	Failures int
}

// The columns Observe reads and writes, which every table holding a Clock has:
//
//	absent_micros   BIGINT NOT NULL DEFAULT 0  -- AbsentFor
//	absent_since    BIGINT                      -- the last answered poll of the current stretch; NULL after a failed poll
//	lookup_failures INTEGER NOT NULL DEFAULT 0 -- Failures

// Observe records one poll of the application whose key column (`ref`) in table is ref: answered
// when every record still missing got an answer showing it absent, not answered when a lookup
// failed. It returns the clock after the poll. Each poll is one UPDATE that computes the new value
// from the stored one, so polls of the same application racing each other (two replicas) never
// count a stretch twice.
func Observe(ctx context.Context, d *db.DB, table, ref string, answered bool, now time.Time) (Clock, error) {
	var row struct {
		Absent   int64 `db:"absent_micros"`
		Failures int   `db:"lookup_failures"`
	}
	err := d.Write(ctx, func(tx *db.Tx) error {
		if !answered {
			return tx.Get(&row, `UPDATE `+table+` SET absent_since = NULL, lookup_failures = lookup_failures + 1
				WHERE ref = ? RETURNING absent_micros, lookup_failures`, ref)
		}
		t := db.Micros(now)
		return tx.Get(&row, `UPDATE `+table+` SET
				absent_micros = absent_micros + CASE WHEN absent_since IS NULL OR absent_since > ? THEN 0 ELSE ? - absent_since END,
				absent_since = ?, lookup_failures = 0
			WHERE ref = ? RETURNING absent_micros, lookup_failures`, t, t, t, ref)
	})
	if err != nil {
		return Clock{}, err
	}
	return Clock{AbsentFor: time.Duration(row.Absent) * time.Microsecond, Failures: row.Failures}, nil
}

// Next is how soon to poll again after the poll that left the clock as c, for a CA that looks
// every recheck and decides after timeout of absence:
//
//   - after an answered poll, recheck, but not past the moment the verdict falls due;
//   - after failed polls, recheck/2 doubling with each consecutive failure, at most
//     max(recheck, min(5 minutes, timeout/4)): a resolver that stays down is not hammered, and one
//     back from an outage is asked again within a quarter of the timeout.
//
// Never less than a second.
func (c Clock) Next(recheck, timeout time.Duration) time.Duration {
	if c.Failures == 0 {
		return max(time.Second, min(recheck, timeout-c.AbsentFor))
	}
	ceiling := max(recheck, min(5*time.Minute, timeout/4))
	d := recheck / 2
	for i := 1; i < c.Failures && d < ceiling; i++ {
		d *= 2
	}
	return max(time.Second, min(d, ceiling))
}
