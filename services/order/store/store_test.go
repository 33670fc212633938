package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/order/store"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func newStore(t *testing.T, d db.Dialect) *store.Store {
	t.Helper()
	return store.New(dbtest.Open(t, d, "order", db.Options{Migrations: store.Migrations()}))
}

// unpaidOrder stores a new UNPAID order of account acc.
func unpaidOrder(t *testing.T, s *store.Store, acc string) store.Order {
	t.Helper()
	id := ids.New(ids.Order, t0)
	o, err := s.CreateOrder(context.Background(), store.Order{
		ID: id, AccountID: acc, RequestID: "req-" + id, Status: store.StatusUnpaid, ProductID: "dv-single",
		ValidationType: "DV", DomainType: "SINGLE", DomainCount: 1, SubscriptionYears: 2, CurrencyCode: "USD",
		TotalMinor: 9800, CreateTime: db.Micros(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func payment(o store.Order, outbox func(store.Order) (string, error)) store.Payment {
	return store.Payment{AccountID: o.AccountID, OrderID: o.ID, Reference: "ref", BundleID: ids.New(ids.Bundle, t0), Time: t0, Outbox: outbox}
}

func payload(o store.Order) (string, error) { return fmt.Sprintf(`{"order":%q}`, o.ID), nil }

// A payment that fails after the order row was updated leaves nothing behind: the order is still
// UNPAID and the outbox empty, and no after-commit hook ran.
func TestPayOrderAllOrNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		s := newStore(t, d)
		ctx := context.Background()
		taken := unpaidOrder(t, s, "acc_1")
		takenPay := payment(taken, payload)
		if _, err := s.PayOrder(ctx, takenPay, nil); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			change func(p *store.Payment)
		}{
			{"outbox payload fails", func(p *store.Payment) {
				p.Outbox = func(store.Order) (string, error) { return "", errors.New("cannot encode") }
			}},
			{"bundle id already used", func(p *store.Payment) { p.BundleID = takenPay.BundleID }},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				o := unpaidOrder(t, s, "acc_1")
				p := payment(o, payload)
				tc.change(&p)
				hookRan := false
				if _, err := s.PayOrder(ctx, p, func() { hookRan = true }); err == nil {
					t.Fatal("PayOrder succeeded")
				}
				got, err := s.GetOrder(ctx, "acc_1", o.ID)
				if err != nil || got.Status != store.StatusUnpaid || got.PaymentReference.Valid || got.BundleID.Valid || got.PayTime.Valid {
					t.Errorf("order after the failed payment = %+v, %v; want it UNPAID and untouched", got, err)
				}
				if n, _ := s.OutboxLen(ctx); n != 1 {
					t.Errorf("outbox has %d messages, want only the earlier payment's", n)
				}
				if hookRan {
					t.Error("after-commit hook ran for a failed payment")
				}
			})
		}
	})
}

func TestPayOrderWritesOutbox(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		s := newStore(t, d)
		ctx := context.Background()
		o := unpaidOrder(t, s, "acc_1")
		p := payment(o, func(o store.Order) (string, error) {
			// The payload is built from the order as it becomes PAID.
			return fmt.Sprintf("%s %s %s", o.Status, o.BundleID.String, o.PaymentReference.String), nil
		})
		hookRan := false
		if _, err := s.PayOrder(ctx, p, func() { hookRan = true }); err != nil {
			t.Fatal(err)
		}
		if !hookRan {
			t.Error("after-commit hook did not run")
		}
		ms, err := s.DueOutbox(ctx, t0, 10)
		if err != nil || len(ms) != 1 {
			t.Fatalf("due messages = %v, %v; want 1 due at the payment time", ms, err)
		}
		m := ms[0]
		want := store.OutboxMessage{ID: p.BundleID, Kind: store.OutboxKindCreateBundle, OrderID: o.ID,
			Payload: "PAID " + p.BundleID + " ref", NextAttemptTime: db.Micros(t0), CreateTime: db.Micros(t0)}
		if m != want {
			t.Errorf("outbox message = %+v, want %+v", m, want)
		}
		if next, ok, err := s.NextOutboxTime(ctx); err != nil || !ok || !next.Equal(t0) {
			t.Errorf("NextOutboxTime = %v, %v, %v; want %v", next, ok, err, t0)
		}
		// The same payment repeated (with the fresh bundle id a retried request gets) keeps the first.
		repeat, err := s.PayOrder(ctx, payment(o, payload), func() { t.Error("after-commit hook ran for a repeated payment") })
		if err != nil || repeat.BundleID.String != p.BundleID {
			t.Errorf("repeated payment = %+v, %v; want the order with the first bundle id %s", repeat, err, p.BundleID)
		}
		if n, _ := s.OutboxLen(ctx); n != 1 {
			t.Errorf("outbox has %d messages after a repeated payment, want 1", n)
		}
		other := payment(o, payload)
		other.Reference = "other"
		if _, err := s.PayOrder(ctx, other, nil); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("payment with another reference = %v, want FailedPrecondition", err)
		}
	})
}

func TestRecordDeliveries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		s := newStore(t, d)
		ctx := context.Background()
		if _, ok, err := s.NextOutboxTime(ctx); ok || err != nil {
			t.Errorf("NextOutboxTime on an empty outbox = %v, %v; want false, nil", ok, err)
		}
		var msgs []store.Payment
		for range 3 {
			o := unpaidOrder(t, s, "acc_1")
			p := payment(o, payload)
			if _, err := s.PayOrder(ctx, p, nil); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, p)
		}
		later := t0.Add(time.Minute)
		err := s.RecordDeliveries(ctx, later,
			[]store.Delivered{{MessageID: msgs[0].BundleID, OrderID: msgs[0].OrderID, CertificateIDs: []string{"crt_a", "crt_b"}}},
			[]store.Failed{
				{MessageID: msgs[1].BundleID, Attempts: 3, Next: later.Add(time.Hour), Err: "down"},
				{MessageID: msgs[2].BundleID, Attempts: 1, Next: later.Add(time.Second), Err: "busy"},
			})
		if err != nil {
			t.Fatal(err)
		}
		delivered, err := s.GetOrder(ctx, "acc_1", msgs[0].OrderID)
		if err != nil || !slices.Equal(delivered.Certificates(), []string{"crt_a", "crt_b"}) || delivered.BundleDeliveryTime.Int64 != db.Micros(later) {
			t.Errorf("delivered order = %+v, %v", delivered, err)
		}
		// Due now: nothing; the failed ones come due in order of their next attempt.
		if ms, _ := s.DueOutbox(ctx, later, 10); len(ms) != 0 {
			t.Errorf("due at the delivery time: %v, want none", ms)
		}
		ms, err := s.DueOutbox(ctx, later.Add(2*time.Hour), 10)
		if err != nil || len(ms) != 2 || ms[0].ID != msgs[2].BundleID || ms[1].ID != msgs[1].BundleID {
			t.Fatalf("due later = %+v, %v; want the two failed messages, soonest first", ms, err)
		}
		if ms[1].Attempts != 3 || ms[1].LastError.String != "down" || ms[1].NextAttemptTime != db.Micros(later.Add(time.Hour)) {
			t.Errorf("failed message = %+v", ms[1])
		}
		if ms, _ := s.DueOutbox(ctx, later.Add(2*time.Hour), 1); len(ms) != 1 {
			t.Errorf("DueOutbox with limit 1 returned %d messages", len(ms))
		}
		if next, ok, _ := s.NextOutboxTime(ctx); !ok || !next.Equal(later.Add(time.Second)) {
			t.Errorf("NextOutboxTime = %v, %v; want %v", next, ok, later.Add(time.Second))
		}
	})
}

func TestCertificatesNull(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		var o store.Order
		if got := o.Certificates(); got != nil {
			t.Errorf("Certificates of an undelivered order = %v, want nil", got)
		}
	})
}

// Several relays share one outbox: claims made concurrently never overlap, every due message is
// claimed by exactly one of them, and a claim that is not settled falls due again after its lease.
func TestClaimOutbox(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		if d == db.SQLite {
			t.Skip("a SQLite file has one process, which claims nothing (ClaimOutbox reads what is due)")
		}
		s := newStore(t, d)
		ctx := context.Background()
		const n = 40
		for range n {
			if _, err := s.PayOrder(ctx, payment(unpaidOrder(t, s, "acc_1"), payload), nil); err != nil {
				t.Fatal(err)
			}
		}
		const lease = 30 * time.Second
		var mu sync.Mutex
		owner := map[string]int{}
		var wg sync.WaitGroup
		for relay := range 4 {
			wg.Go(func() {
				for {
					ms, err := s.ClaimOutbox(ctx, t0, lease, 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(ms) == 0 {
						return
					}
					mu.Lock()
					for _, m := range ms {
						if prev, dup := owner[m.ID]; dup {
							t.Errorf("message %s claimed by relay %d and relay %d", m.ID, prev, relay)
						}
						owner[m.ID] = relay
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(owner) != n {
			t.Fatalf("%d messages claimed, want %d", len(owner), n)
		}
		if ms, err := s.ClaimOutbox(ctx, t0.Add(lease-time.Microsecond), lease, n); err != nil || len(ms) != 0 {
			t.Errorf("claim before the lease ends = %d messages, %v; want none", len(ms), err)
		}
		// The claiming relays died: after the lease, another takes every message over.
		if ms, err := s.ClaimOutbox(ctx, t0.Add(lease), lease, n); err != nil || len(ms) != n {
			t.Errorf("claim after the lease = %d messages, %v; want %d", len(ms), err, n)
		}
	})
}
