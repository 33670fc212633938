package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// CertificateAt finds a bundle's instance by its subscription year, and answers NotFound for a
// year the bundle does not have.
func TestCertificateAt(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		ctx := context.Background()
		s := New(dbtest.Open(t, dialect, "lifecycle", DBOptions()), nil)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		nb := newBundle(ids.New(ids.Account, now), now, 3)
		if _, _, err := s.CreateBundle(ctx, nb); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			sequence int
			want     string // certificate id; "" for NotFound
		}{
			{1, nb.Certificates[0].ID},
			{2, nb.Certificates[1].ID},
			{3, nb.Certificates[2].ID},
			{4, ""},
			{0, ""},
		} {
			err := s.Write(ctx, db.Micros(now), func(tx *Tx) error {
				c, err := tx.CertificateAt(nb.Bundle.ID, tc.sequence)
				if tc.want == "" {
					if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), nb.Bundle.ID) {
						t.Errorf("sequence %d: got %+v, err %v; want NotFound naming the bundle", tc.sequence, c, err)
					}
					return nil
				}
				if err != nil || c.ID != tc.want || c.Sequence != tc.sequence {
					t.Errorf("sequence %d: got %s (sequence %d), err %v; want %s", tc.sequence, c.ID, c.Sequence, err, tc.want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}
