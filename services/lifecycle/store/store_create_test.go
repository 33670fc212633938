package store

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

func newBundle(account string, now time.Time, years int) NewBundle {
	us := db.Micros(now)
	id := ids.New(ids.Bundle, now)
	nb := NewBundle{
		Bundle: Bundle{ID: id, AccountID: account, OrderID: ids.New(ids.Order, now), ProductID: "dv-single",
			ValidationType: "DV", DomainType: "SINGLE", DomainCount: 1, Hosting: years > 1, SubscriptionYears: years, CreateTime: us},
		Reason: "order paid",
	}
	for seq := 1; seq <= years; seq++ {
		st := state.NotActivated
		if seq == 1 {
			st = state.PendingApplication
		}
		nb.Certificates = append(nb.Certificates, Certificate{ID: ids.New(ids.Certificate, now), BundleID: id,
			AccountID: account, Sequence: seq, State: st, CreateTime: us, UpdateTime: us})
	}
	return nb
}

// CreateBundle writes the instances and their events with multi-row INSERTs and looks the bundle
// up only when its INSERT changed nothing; this covers each outcome.
func TestCreateBundle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		ctx := context.Background()
		d := dbtest.Open(t, dialect, "lifecycle", DBOptions())
		s := New(d, nil)
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		account := ids.New(ids.Account, now)

		nb := newBundle(account, now, 3)
		if _, created, err := s.CreateBundle(ctx, nb); err != nil || !created {
			t.Fatalf("first CreateBundle: created %v, err %v; want true, nil", created, err)
		}
		_, certs, err := s.GetBundle(ctx, account, nb.Bundle.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) != 3 {
			t.Fatalf("got %d instances, want 3", len(certs))
		}
		var lastEvent int64
		for i, c := range certs {
			if c.ID != nb.Certificates[i].ID || c.Sequence != i+1 || c.State != nb.Certificates[i].State {
				t.Errorf("instance %d: got %+v, want %+v", i+1, c, nb.Certificates[i])
			}
			es, err := s.ListEvents(ctx, account, c.ID, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 1 || es[0].To != c.State || es[0].Type != EventCreated || es[0].ID <= lastEvent {
				t.Errorf("instance %d: events %+v, want one %q event to %s with an id above %d", i+1, es, EventCreated, c.State, lastEvent)
			}
			if len(es) > 0 {
				lastEvent = es[0].ID
			}
		}

		t.Run("repeated delivery", func(t *testing.T) {
			b, created, err := s.CreateBundle(ctx, nb)
			if err != nil || created || b != nb.Bundle {
				t.Errorf("got %+v, created %v, err %v; want the stored bundle, false, nil", b, created, err)
			}
		})
		t.Run("bundle id of another order", func(t *testing.T) {
			other := newBundle(account, now, 2)
			other.Bundle.ID = nb.Bundle.ID
			if _, _, err := s.CreateBundle(ctx, other); status.Code(err) != codes.AlreadyExists {
				t.Errorf("got %v, want AlreadyExists", err)
			}
		})
		t.Run("order with another bundle", func(t *testing.T) {
			other := newBundle(account, now, 2)
			other.Bundle.OrderID = nb.Bundle.OrderID
			if _, _, err := s.CreateBundle(ctx, other); status.Code(err) != codes.AlreadyExists {
				t.Errorf("got %v, want AlreadyExists", err)
			}
			if _, _, err := s.GetBundle(ctx, account, other.Bundle.ID); status.Code(err) != codes.NotFound {
				t.Errorf("GetBundle of the refused bundle: got %v, want NotFound", err)
			}
		})
	})
}
