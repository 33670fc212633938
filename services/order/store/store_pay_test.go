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
)

// Each outcome of CreateOrder and PayOrder, including the repeated and refused ones, and the
// outbox row a payment writes.
func TestCreateAndPayOrder(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		s := New(dbtest.Open(t, d, "order", db.Options{Migrations: Migrations()}))
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		account := ids.New(ids.Account, now)
		order := func(requestID string, years int) Order {
			return Order{ID: ids.New(ids.Order, now), AccountID: account, RequestID: requestID, Status: StatusUnpaid,
				ProductID: "dv-single", ValidationType: "DV", DomainType: "SINGLE", DomainCount: 1, SubscriptionYears: years,
				Hosting: years > 1, CurrencyCode: "USD", TotalMinor: 4900 * int64(years), CreateTime: db.Micros(now)}
		}
		payment := func(orderID, ref string) Payment {
			return Payment{AccountID: account, OrderID: orderID, Reference: ref, BundleID: ids.New(ids.Bundle, now), Time: now,
				Outbox: func(o Order) (string, error) { return "payload of " + o.ID + " " + o.Status, nil }}
		}

		o := order("r1", 3)
		created, err := s.CreateOrder(ctx, o)
		if err != nil || created != o {
			t.Fatalf("CreateOrder: got %+v, %v; want %+v", created, err, o)
		}
		again, err := s.CreateOrder(ctx, order("r1", 3))
		if err != nil || again.ID != o.ID {
			t.Errorf("repeated CreateOrder: got %+v, %v; want order %s", again, err, o.ID)
		}
		if _, err := s.CreateOrder(ctx, order("r1", 2)); status.Code(err) != codes.AlreadyExists {
			t.Errorf("CreateOrder reusing the request id with other parameters: got %v, want AlreadyExists", err)
		}

		notified := 0
		pay := payment(o.ID, "pay-1")
		paid, err := s.PayOrder(ctx, pay, func() { notified++ })
		if err != nil {
			t.Fatal(err)
		}
		if paid.Status != StatusPaid || paid.PaymentReference.String != "pay-1" || paid.BundleID.String != pay.BundleID ||
			paid.PayTime.Int64 != db.Micros(now) || paid.RequestID != "r1" || paid.SubscriptionYears != 3 || notified != 1 {
			t.Errorf("PayOrder: got %+v (notified %d)", paid, notified)
		}
		if stored, err := s.GetOrder(ctx, account, o.ID); err != nil || stored != paid {
			t.Errorf("GetOrder after payment: got %+v, %v; want %+v", stored, err, paid)
		}
		due, err := s.DueOutbox(ctx, now, 10)
		if err != nil || len(due) != 1 || due[0].ID != pay.BundleID || due[0].Payload != "payload of "+o.ID+" PAID" {
			t.Errorf("outbox: got %+v, %v; want one message for the PAID order", due, err)
		}

		repeat, err := s.PayOrder(ctx, payment(o.ID, "pay-1"), func() { notified++ })
		if err != nil || repeat != paid || notified != 1 {
			t.Errorf("repeated PayOrder: got %+v, %v (notified %d); want the paid order unchanged", repeat, err, notified)
		}
		if n, _ := s.OutboxLen(ctx); n != 1 {
			t.Errorf("outbox has %d messages after a repeated payment, want 1", n)
		}
		if _, err := s.PayOrder(ctx, payment(o.ID, "pay-2"), nil); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("PayOrder with another reference: got %v, want FailedPrecondition", err)
		}
		if _, err := s.PayOrder(ctx, payment(ids.New(ids.Order, now), "pay-3"), nil); status.Code(err) != codes.NotFound {
			t.Errorf("PayOrder of an unknown order: got %v, want NotFound", err)
		}
		other := payment(o.ID, "pay-1")
		other.AccountID = ids.New(ids.Account, now)
		if _, err := s.PayOrder(ctx, other, nil); status.Code(err) != codes.NotFound {
			t.Errorf("PayOrder of another account's order: got %v, want NotFound", err)
		}
		c, err := s.CreateOrder(ctx, order("r2", 2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CancelOrder(ctx, account, c.ID, now); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PayOrder(ctx, payment(c.ID, "pay-4"), nil); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("PayOrder of a cancelled order: got %v, want FailedPrecondition", err)
		}
	})
}
