package e2e

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// refunded waits until the order's refund is decided and returns the order.
func (c clients) refunded(t *testing.T, orderID string) *orderv1.Order {
	t.Helper()
	var o *orderv1.Order
	waitFor(t, 30*time.Second, func() error {
		resp, err := c.order.GetOrder(t.Context(), &orderv1.GetOrderRequest{OrderId: orderID})
		if err != nil {
			return err
		}
		o = resp.GetOrder()
		if o.GetRefundStatus() == orderv1.RefundStatus_REFUND_STATUS_REQUESTED {
			return fmt.Errorf("order %s: refund still requested", orderID)
		}
		return nil
	})
	return o
}

// Refunds of unused purchases, across the two processes: the refund of a bundle nobody applied for
// reaches the lifecycle service through the outbox (also when it is down at the time of the
// request) and cancels every instance once; a bundle applied for is refused, with the reason on
// the order; bad requests are refused by the order service.
func TestRefundUnusedPurchase(t *testing.T) {
	t.Parallel()
	e := start(t)
	unused := e.buy(t, "refund-unused", 3, true)
	used := e.buy(t, "refund-used", 2, false)
	unusedDelivered, usedDelivered := e.delivered(t, unused.GetOrderId()), e.delivered(t, used.GetOrderId())
	if _, err := e.lifecycle.SubmitApplication(t.Context(), &lifecyclev1.SubmitApplicationRequest{
		CertificateId: usedDelivered.GetCertificateIds()[0], Domains: []string{"used.example.com"},
		Contact: &lifecyclev1.Contact{Email: "ops@example.com"}}); err != nil {
		t.Fatalf("SubmitApplication: %v", err)
	}

	// The lifecycle service is down when the refund is asked for: the outbox keeps it.
	if err := e.StopLifecycle(); err != nil {
		t.Fatal(err)
	}
	resp, err := e.order.RefundOrder(t.Context(), &orderv1.RefundOrderRequest{OrderId: unused.GetOrderId()})
	if err != nil {
		t.Fatalf("RefundOrder: %v", err)
	}
	if o := resp.GetOrder(); o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_REQUESTED {
		t.Fatalf("after RefundOrder: %s, refund %s; want PAID, REQUESTED", o.GetStatus(), o.GetRefundStatus())
	}
	again, err := e.order.RefundOrder(t.Context(), &orderv1.RefundOrderRequest{OrderId: unused.GetOrderId()})
	if err != nil || again.GetOrder().GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_REQUESTED {
		t.Errorf("RefundOrder again = %v, %v; want the order unchanged", again.GetOrder().GetRefundStatus(), err)
	}
	if _, err := e.order.RefundOrder(t.Context(), &orderv1.RefundOrderRequest{OrderId: used.GetOrderId()}); err != nil {
		t.Fatalf("RefundOrder of the used bundle's order: %v", err)
	}
	if err := e.StartLifecycle(t.Context()); err != nil {
		t.Fatal(err)
	}

	o := e.refunded(t, unused.GetOrderId())
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_REFUNDED || o.GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_REFUNDED || o.GetRefundTime() == nil {
		t.Errorf("unused order: %s, refund %s at %v; want REFUNDED with a refund time", o.GetStatus(), o.GetRefundStatus(), o.GetRefundTime())
	}
	b, err := e.lifecycle.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: unusedDelivered.GetBundleId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range b.GetBundle().GetCertificates() {
		if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_CANCELLED || c.GetDaysPaid() != 0 {
			t.Errorf("instance %d of the refunded bundle: %s, %d days paid; want CANCELLED, 0", c.GetSequence(), c.GetState(), c.GetDaysPaid())
		}
		h, err := e.lifecycle.GetCertificateLifecycle(t.Context(), &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: c.GetCertificateId()})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range h.GetEvents() {
			if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_CANCELLED {
				n++
			}
		}
		if n != 1 {
			t.Errorf("instance %d has %d CANCELLED events, want exactly one", c.GetSequence(), n)
		}
	}
	_, err = e.lifecycle.SubmitApplication(t.Context(), &lifecyclev1.SubmitApplicationRequest{
		CertificateId: unusedDelivered.GetCertificateIds()[0], Domains: []string{"late.example.com"},
		Contact: &lifecyclev1.Contact{Email: "ops@example.com"}})
	wantCode(t, "applying for a cancelled instance", err, codes.FailedPrecondition)

	o = e.refunded(t, used.GetOrderId())
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_REFUSED || o.GetRefundMessage() == "" {
		t.Errorf("used order: %s, refund %s %q; want PAID, REFUSED with the reason", o.GetStatus(), o.GetRefundStatus(), o.GetRefundMessage())
	}

	unpaid := e.create(t, orderRequest("refund-unpaid", 1, false))
	for _, tc := range []struct {
		name string
		id   string
		code codes.Code
	}{
		{"unpaid", unpaid.GetOrderId(), codes.FailedPrecondition},
		{"malformed id", "ord_nope", codes.InvalidArgument},
		{"unknown order", "ord_01KBQ4Z2Y2Y2Y2Y2Y2Y2Y2Y2Y2", codes.NotFound},
	} {
		_, err := e.order.RefundOrder(t.Context(), &orderv1.RefundOrderRequest{OrderId: tc.id})
		wantCode(t, "RefundOrder "+tc.name, err, tc.code)
	}
}
