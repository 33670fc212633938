package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// Every ticker sweep asks for the deploy checks due, so on SQLite the query must start from the
// bundles that expect deployment targets and reach the rest by key: a plan that scans bundles (or
// issuances) costs every sweep time in proportion to the store (docs/performance.md, "Flat
// costs"). What the query returns is TestDeploymentOverdue's (package lifecycle).
func TestDeployChecksDuePlan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Open(t, db.SQLite, "lifecycle", DBOptions())
	s := New(d, nil)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	account := ids.New(ids.Account, now)
	for range 50 {
		if _, _, err := s.CreateBundle(ctx, newBundle(account, now, 2)); err != nil {
			t.Fatal(err)
		}
	}
	var plan []struct {
		ID      int    `db:"id"`
		Parent  int    `db:"parent"`
		NotUsed int    `db:"notused"`
		Detail  string `db:"detail"`
	}
	if err := d.Select(ctx, &plan, `EXPLAIN QUERY PLAN `+deployChecksDue, 0, 0, 10); err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, p := range plan {
		steps = append(steps, p.Detail)
	}
	for _, step := range steps {
		if strings.HasPrefix(step, "SCAN b") || strings.HasPrefix(step, "SCAN i") ||
			strings.HasPrefix(step, "SCAN bundles") || strings.HasPrefix(step, "SCAN issuances") {
			t.Errorf("the deploy check query scans a whole table of the store: %q\nplan: %s", step, strings.Join(steps, "; "))
		}
	}
}
