package e2e

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// deliveryTimeout bounds how long a paid order may wait for its bundle. Delivery takes
// milliseconds; after a service restart the relay's retry backoff (0.5 s doubling) and the
// client's reconnect backoff add a few seconds.
const deliveryTimeout = 20 * time.Second

// orderRequest is a single-domain DV order.
func orderRequest(requestID string, years int32, hosting bool) *orderv1.CreateOrderRequest {
	return &orderv1.CreateOrderRequest{RequestId: requestID, ProductId: "dv-single", DomainCount: 1, SubscriptionYears: years, Hosting: hosting}
}

// create places an order and fails the test if that fails.
func (c clients) create(t *testing.T, req *orderv1.CreateOrderRequest) *orderv1.Order {
	t.Helper()
	resp, err := c.order.CreateOrder(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateOrder(%s): %v", req.GetRequestId(), err)
	}
	return resp.GetOrder()
}

// pay pays an order and fails the test unless it comes back PAID with a bundle id.
func (c clients) pay(t *testing.T, orderID, reference string) *orderv1.Order {
	t.Helper()
	resp, err := c.order.PayOrder(t.Context(), &orderv1.PayOrderRequest{OrderId: orderID, PaymentReference: reference})
	if err != nil {
		t.Fatalf("PayOrder(%s): %v", orderID, err)
	}
	o := resp.GetOrder()
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetBundleId() == "" {
		t.Fatalf("PayOrder(%s) = status %v, bundle %q; want PAID with a bundle", orderID, o.GetStatus(), o.GetBundleId())
	}
	return o
}

// buy creates and pays an order and waits until its bundle is delivered.
func (c clients) buy(t *testing.T, requestID string, years int32, hosting bool) *orderv1.Order {
	t.Helper()
	o := c.create(t, orderRequest(requestID, years, hosting))
	c.pay(t, o.GetOrderId(), "pay-"+requestID)
	return c.delivered(t, o.GetOrderId())
}

// delivered waits until the lifecycle service has acknowledged the order's bundle (the order shows
// its certificate ids) and returns the order.
func (c clients) delivered(t *testing.T, orderID string) *orderv1.Order {
	t.Helper()
	var o *orderv1.Order
	waitFor(t, deliveryTimeout, func() error {
		resp, err := c.order.GetOrder(t.Context(), &orderv1.GetOrderRequest{OrderId: orderID})
		if err != nil {
			return err
		}
		if o = resp.GetOrder(); o.GetBundleDeliveryTime() == nil || len(o.GetCertificateIds()) == 0 {
			return fmt.Errorf("order %s (%v): bundle not delivered yet", orderID, o.GetStatus())
		}
		return nil
	})
	return o
}

// listPageSize is small enough that the crash test's listings span several pages.
const listPageSize = 100

// bundlesPerOrder lists every bundle of the caller's account, all pages, and counts them by order.
func (c clients) bundlesPerOrder(t *testing.T) map[string]int {
	t.Helper()
	n := map[string]int{}
	req := &lifecyclev1.ListBundlesRequest{PageSize: listPageSize}
	for {
		resp, err := c.lifecycle.ListBundles(t.Context(), req)
		if err != nil {
			t.Fatalf("ListBundles: %v", err)
		}
		for _, b := range resp.GetBundles() {
			n[b.GetOrderId()]++
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return n
		}
	}
}

// listOrders lists every order of the caller's account, all pages.
func (c clients) listOrders(t *testing.T) []*orderv1.Order {
	t.Helper()
	var all []*orderv1.Order
	req := &orderv1.ListOrdersRequest{PageSize: listPageSize}
	for {
		resp, err := c.order.ListOrders(t.Context(), req)
		if err != nil {
			t.Fatalf("ListOrders: %v", err)
		}
		all = append(all, resp.GetOrders()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return all
		}
	}
}

// wantCode reports an error unless err has the gRPC code want.
func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, want)
	}
}
