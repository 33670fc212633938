package store

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// Replicas' tickers share the sweeps: claims made at the same moment never overlap, together they
// cover every due row once, a claimed row waits out the lease, and the work's own write
// (SaveSchedule) gives the claim back.
func TestClaimCertificates(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		if dialect == db.SQLite {
			t.Skip("a SQLite file has one process, which claims nothing (ClaimCertificates reads what is due)")
		}
		ctx := context.Background()
		s := New(dbtest.Open(t, dialect, "lifecycle", DBOptions()), nil)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		account := ids.New(ids.Account, now)
		const n = 60
		var due []string
		for i := range n + 10 {
			nb := newBundle(account, now, 1)
			if _, _, err := s.CreateBundle(ctx, nb); err != nil {
				t.Fatal(err)
			}
			c := nb.Certificates[0]
			at := now.Add(-time.Duration(i) * time.Second) // due
			if i >= n {
				at = now.Add(time.Hour) // not yet
			} else {
				due = append(due, c.ID)
			}
			c.RenewAt = sql.NullInt64{Int64: db.Micros(at), Valid: true}
			if err := s.Write(ctx, db.Micros(now), func(tx *Tx) error { return tx.SaveSchedule(&c) }); err != nil {
				t.Fatal(err)
			}
		}
		const lease = 30 * time.Second
		var mu sync.Mutex
		owner := map[string]int{}
		var wg sync.WaitGroup
		for replica := range 3 {
			wg.Go(func() {
				for {
					cs, err := s.ClaimCertificates(ctx, SweepRenew, now, lease, 7)
					if err != nil {
						t.Error(err)
						return
					}
					if len(cs) == 0 {
						return
					}
					mu.Lock()
					for _, c := range cs {
						if prev, dup := owner[c.ID]; dup {
							t.Errorf("certificate %s claimed by replica %d and replica %d", c.ID, prev, replica)
						}
						owner[c.ID] = replica
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, id := range due {
			if _, ok := owner[id]; !ok {
				t.Errorf("due certificate %s was never claimed", id)
			}
		}
		if len(owner) != n {
			t.Fatalf("%d certificates claimed, want the %d due", len(owner), n)
		}
		if cs, err := s.ClaimCertificates(ctx, SweepRenew, now.Add(lease-time.Microsecond), lease, n); err != nil || len(cs) != 0 {
			t.Errorf("claim within the lease = %d rows, %v; want none", len(cs), err)
		}
		// One replica finishes its work on a row (SaveSchedule, here rescheduling it to now):
		// the claim is given back; the others' claims outlive their replicas until the lease ends.
		c, err := s.CertificateOf(ctx, account, due[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, db.Micros(now), func(tx *Tx) error { return tx.SaveSchedule(&c) }); err != nil {
			t.Fatal(err)
		}
		if cs, err := s.ClaimCertificates(ctx, SweepRenew, now, lease, n); err != nil || len(cs) != 1 || cs[0].ID != due[0] {
			t.Errorf("claim after SaveSchedule = %v, %v; want just %s", cs, err, due[0])
		}
		if cs, err := s.ClaimCertificates(ctx, SweepRenew, now.Add(lease), lease, n); err != nil || len(cs) != n {
			t.Errorf("claim after the lease = %d rows, %v; want all %d again", len(cs), err, n)
		}
		if _, err := s.ClaimCertificates(ctx, "state", now, lease, n); err == nil {
			t.Error("ClaimCertificates on a column that is not a sweep column succeeded")
		}
	})
}
