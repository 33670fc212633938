package store_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// BackfillDomains fills the names of instances stored before certificate_domains existed, once
// each, in batches, and stops: also when an application has no names to fill.
func TestBackfillDomains(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lifecycle.db")
	const n = 1234 // more than two batches
	if err := benchseed.SQLite(ctx, path, n, 0, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, path, store.DBOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	// As a store from before migration 00006 has it: no names kept, and one application with none.
	if err := d.Write(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(`DELETE FROM certificate_domains`); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE applications SET domains = '[]' WHERE application_id = (SELECT MIN(application_id) FROM applications)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	s := store.New(d, nil)
	for i, want := range []struct{ looked, rows int }{{n, n - 1}, {1, n - 1}} {
		got, err := s.BackfillDomains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		if err := d.Get(ctx, &rows, `SELECT COUNT(*) FROM certificate_domains`); err != nil {
			t.Fatal(err)
		}
		if got != want.looked || rows != want.rows {
			t.Errorf("pass %d: looked at %d instances and %d names are kept, want %d and %d", i+1, got, rows, want.looked, want.rows)
		}
	}
}
