package e2e

import (
	"strings"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// A payment becomes one certificate instance per subscription year: the first
// PENDING_APPLICATION, the others NOT_ACTIVATED, numbered 1..years. The order, the bundle and the
// certificate list must all say so.
func TestPaymentCreatesOneInstancePerYear(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, tc := range []struct {
		name    string
		years   int32
		hosting bool
	}{
		{"3 years hosted", 3, true},
		{"2 years not hosted", 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := e.buy(t, "instances-"+strings.ReplaceAll(tc.name, " ", "-"), tc.years, tc.hosting)
			if got := len(o.GetCertificateIds()); got != int(tc.years) {
				t.Fatalf("order has %d certificate ids, want %d", got, tc.years)
			}

			resp, err := e.lifecycle.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
			if err != nil {
				t.Fatalf("GetBundle: %v", err)
			}
			b := resp.GetBundle()
			if b.GetOrderId() != o.GetOrderId() || b.GetSubscriptionYears() != tc.years || b.GetHosting() != tc.hosting {
				t.Errorf("bundle = order %s, %d years, hosting %v; want order %s, %d years, hosting %v",
					b.GetOrderId(), b.GetSubscriptionYears(), b.GetHosting(), o.GetOrderId(), tc.years, tc.hosting)
			}
			checkInstances(t, "GetBundle", b.GetCertificates(), o.GetCertificateIds())

			list, err := e.lifecycle.ListCertificates(t.Context(), &lifecyclev1.ListCertificatesRequest{BundleId: o.GetBundleId()})
			if err != nil {
				t.Fatalf("ListCertificates: %v", err)
			}
			checkInstances(t, "ListCertificates", list.GetCertificates(), o.GetCertificateIds())
		})
	}
}

// checkInstances checks a bundle's instances: exactly one PENDING_APPLICATION (sequence 1), the
// rest NOT_ACTIVATED, sequences 1..n, and the ids the order recorded, in order.
func checkInstances(t *testing.T, source string, certs []*lifecyclev1.Certificate, orderCertIDs []string) {
	t.Helper()
	if len(certs) != len(orderCertIDs) {
		t.Fatalf("%s: %d instances, the order lists %d", source, len(certs), len(orderCertIDs))
	}
	count := map[lifecyclev1.CertificateState]int{}
	for i, c := range certs {
		count[c.GetState()]++
		want := lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED
		if i == 0 {
			want = lifecyclev1.CertificateState_CERTIFICATE_STATE_PENDING_APPLICATION
		}
		if c.GetSequence() != int32(i+1) || c.GetState() != want || c.GetCertificateId() != orderCertIDs[i] {
			t.Errorf("%s: instance %d = sequence %d, %v, %s; want sequence %d, %v, %s",
				source, i, c.GetSequence(), c.GetState(), c.GetCertificateId(), i+1, want, orderCertIDs[i])
		}
	}
	if p, n := count[lifecyclev1.CertificateState_CERTIFICATE_STATE_PENDING_APPLICATION],
		count[lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED]; p != 1 || n != len(certs)-1 {
		t.Errorf("%s: %d PENDING_APPLICATION + %d NOT_ACTIVATED, want 1 + %d", source, p, n, len(certs)-1)
	}
}

// Hosting needs a 2- or 3-year subscription: a 1-year hosted order is refused with the field
// named, and leaves nothing behind, not even its request_id.
func TestOneYearHostedIsRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	_, err := e.order.CreateOrder(t.Context(), orderRequest("hosted-1y", 1, true))
	wantCode(t, "CreateOrder(1 year, hosted)", err, codes.InvalidArgument)
	st := status.Convert(err)
	if !strings.Contains(st.Message(), "hosting") {
		t.Errorf("message %q does not name the hosting field", st.Message())
	}
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if len(fields) != 1 || fields[0] != "hosting" {
		t.Errorf("BadRequest field violations name %q, want [hosting]", fields)
	}

	if orders := e.listOrders(t); len(orders) != 0 {
		t.Errorf("ListOrders shows %d orders after the refused one, want 0", len(orders))
	}
	if bundles := e.bundlesPerOrder(t); len(bundles) != 0 {
		t.Errorf("ListBundles shows bundles for %d orders, want 0", len(bundles))
	}
	// Had the refused request been stored under its request_id, other parameters would now be
	// AlreadyExists.
	e.create(t, orderRequest("hosted-1y", 2, true))
}

// CreateOrder is idempotent on request_id: the same request, twice in a row or many times at
// once, makes one order.
func TestSameRequestIDMakesOneOrder(t *testing.T) {
	t.Parallel()
	e := start(t)
	first := e.create(t, orderRequest("same-request", 3, true))
	again := e.create(t, orderRequest("same-request", 3, true))
	if again.GetOrderId() != first.GetOrderId() {
		t.Errorf("second CreateOrder made order %s, want the first one, %s", again.GetOrderId(), first.GetOrderId())
	}

	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := e.order.CreateOrder(t.Context(), orderRequest("same-request-at-once", 2, false))
			if err != nil {
				t.Errorf("concurrent CreateOrder: %v", err)
				return
			}
			ids[i] = resp.GetOrder().GetOrderId()
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Errorf("concurrent CreateOrder calls with one request_id made orders %q", ids)
			break
		}
	}

	if orders := e.listOrders(t); len(orders) != 2 {
		t.Errorf("ListOrders shows %d orders, want 2 (one per request_id)", len(orders))
	}
	_, err := e.order.CreateOrder(t.Context(), orderRequest("same-request", 2, true))
	wantCode(t, "CreateOrder(used request_id, other parameters)", err, codes.AlreadyExists)
}

// Paying twice with the same payment reference (at once, and again after delivery) is one
// payment: one bundle id, one bundle in the lifecycle service. Another reference is refused.
func TestPayingTwiceMakesOneBundle(t *testing.T) {
	t.Parallel()
	e := start(t)
	o := e.create(t, orderRequest("pay-twice", 3, true))

	paid := make([]*orderv1.Order, 2)
	var wg sync.WaitGroup
	for i := range paid {
		wg.Go(func() {
			resp, err := e.order.PayOrder(t.Context(), &orderv1.PayOrderRequest{OrderId: o.GetOrderId(), PaymentReference: "ref-1"})
			if err != nil {
				t.Errorf("PayOrder: %v", err)
				return
			}
			paid[i] = resp.GetOrder()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	delivered := e.delivered(t, o.GetOrderId())
	again := e.pay(t, o.GetOrderId(), "ref-1")
	for _, p := range append(paid, again) {
		if p.GetBundleId() != delivered.GetBundleId() {
			t.Errorf("a payment answered bundle %s, the order has %s", p.GetBundleId(), delivered.GetBundleId())
		}
	}

	_, err := e.order.PayOrder(t.Context(), &orderv1.PayOrderRequest{OrderId: o.GetOrderId(), PaymentReference: "ref-2"})
	wantCode(t, "PayOrder(another reference)", err, codes.FailedPrecondition)

	if got := e.bundlesPerOrder(t); len(got) != 1 || got[o.GetOrderId()] != 1 {
		t.Errorf("bundles per order = %v, want exactly one, for %s", got, o.GetOrderId())
	}
}
