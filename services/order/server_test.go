package order_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/ids"
)

const (
	unpaid    = orderv1.OrderStatus_ORDER_STATUS_UNPAID
	paid      = orderv1.OrderStatus_ORDER_STATUS_PAID
	cancelled = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
)

func getOrder(t *testing.T, c orderv1.OrderServiceClient, id string) *orderv1.Order {
	t.Helper()
	resp, err := c.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: id})
	if err != nil {
		t.Fatalf("GetOrder(%s): %v", id, err)
	}
	return resp.GetOrder()
}

func pay(c orderv1.OrderServiceClient, id, ref string) (*orderv1.Order, error) {
	resp, err := c.PayOrder(context.Background(), &orderv1.PayOrderRequest{OrderId: id, PaymentReference: ref})
	return resp.GetOrder(), err
}

func cancel(c orderv1.OrderServiceClient, id string) (*orderv1.Order, error) {
	resp, err := c.CancelOrder(context.Background(), &orderv1.CancelOrderRequest{OrderId: id})
	return resp.GetOrder(), err
}

func TestListProducts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := e.a.ListProducts(context.Background(), &orderv1.ListProductsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.GetProducts() {
		got = append(got, p.GetProductId())
	}
	want := []string{"dv-single", "dv-wildcard", "dv-multi", "ov-single", "ov-multi", "ev-single", "ev-multi"}
	if !slices.Equal(got, want) {
		t.Errorf("products %v, want %v in catalog order", got, want)
	}
	p := resp.GetProducts()[2]
	if p.GetValidationType() != orderv1.ValidationType_VALIDATION_TYPE_DV || p.GetDomainType() != orderv1.DomainType_DOMAIN_TYPE_MULTI ||
		p.GetMaxDomains() != 100 || p.GetYearlyPrice().GetAmountMinor() != 3900 || p.GetYearlyPrice().GetCurrencyCode() != "USD" {
		t.Errorf("dv-multi = %v", p)
	}
}

func TestCreateOrderInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := func() *orderv1.CreateOrderRequest {
		return &orderv1.CreateOrderRequest{RequestId: "r1", ProductId: "dv-multi", DomainCount: 2, SubscriptionYears: 2, Hosting: true}
	}
	tests := []struct {
		name   string
		change func(r *orderv1.CreateOrderRequest)
		field  string
	}{
		{"hosting with 1 year", func(r *orderv1.CreateOrderRequest) { r.SubscriptionYears = 1 }, "hosting"},
		{"0 years", func(r *orderv1.CreateOrderRequest) { r.SubscriptionYears = 0 }, "subscription_years"},
		{"4 years", func(r *orderv1.CreateOrderRequest) { r.SubscriptionYears = 4 }, "subscription_years"},
		{"unknown product", func(r *orderv1.CreateOrderRequest) { r.ProductId = "dv-galaxy" }, "product_id"},
		{"no product", func(r *orderv1.CreateOrderRequest) { r.ProductId = "" }, "product_id"},
		{"domain_count 0", func(r *orderv1.CreateOrderRequest) { r.DomainCount = 0 }, "domain_count"},
		{"domain_count negative", func(r *orderv1.CreateOrderRequest) { r.DomainCount = -1 }, "domain_count"},
		{"domain_count above max", func(r *orderv1.CreateOrderRequest) { r.DomainCount = 101 }, "domain_count"},
		{"2 domains on a single-domain product", func(r *orderv1.CreateOrderRequest) { r.ProductId = "ev-single" }, "domain_count"},
		{"empty request_id", func(r *orderv1.CreateOrderRequest) { r.RequestId = "" }, "request_id"},
		{"overlong request_id", func(r *orderv1.CreateOrderRequest) { r.RequestId = strings.Repeat("r", 129) }, "request_id"},
		{"request_id with a space", func(r *orderv1.CreateOrderRequest) { r.RequestId = "my order" }, "request_id"},
		{"request_id with a tab", func(r *orderv1.CreateOrderRequest) { r.RequestId = "my\torder" }, "request_id"},
		{"request_id not ASCII", func(r *orderv1.CreateOrderRequest) { r.RequestId = "commande-é" }, "request_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := valid()
			tc.change(req)
			_, err := e.a.CreateOrder(context.Background(), req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	// A megabyte of unknown product_id is refused without being echoed back.
	huge := valid()
	huge.ProductId = strings.Repeat("x", 1<<20-64)
	_, err := e.a.CreateOrder(context.Background(), huge)
	grpctest.WantInvalidArgument(t, err, "product_id")
	if n := len(status.Convert(err).Message()); n > 200 {
		t.Errorf("the error message for a 1 MB product_id has %d bytes, want a short prefix of it", n)
	}
	// 128 characters is the most a request_id may have.
	req := valid()
	req.RequestId = strings.Repeat("r", 128)
	if _, err := e.a.CreateOrder(context.Background(), req); err != nil {
		t.Errorf("CreateOrder with a 128-character request_id: %v", err)
	}
	resp, err := e.a.ListOrders(context.Background(), &orderv1.ListOrdersRequest{})
	if err != nil || len(resp.GetOrders()) != 1 {
		t.Errorf("orders after the invalid requests: %v, %v; want only the valid one", resp.GetOrders(), err)
	}
}

// The total is the yearly price per domain × domains × years, in the product's currency.
func TestCreateOrderPrice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		product string
		domains int32
		years   int32
		hosting bool
		want    int64
	}{
		{"dv-single", 1, 1, false, 4900},
		{"dv-wildcard", 1, 2, true, 29800},
		{"dv-multi", 5, 3, true, 58500},
		{"ov-multi", 1, 1, false, 12900},
		{"ev-multi", 100, 2, false, 5980000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %dx%d", tc.product, tc.domains, tc.years), func(t *testing.T) {
			now := e.clk.Now()
			o := e.createOrder(t, e.a, tc.product, tc.domains, tc.years, tc.hosting)
			if got := o.GetTotalPrice(); got.GetAmountMinor() != tc.want || got.GetCurrencyCode() != "USD" {
				t.Errorf("total = %v, want USD %d", got, tc.want)
			}
			if !ids.Valid(ids.Order, o.GetOrderId()) || o.GetStatus() != unpaid || o.GetProductId() != tc.product ||
				o.GetDomainCount() != tc.domains || o.GetSubscriptionYears() != tc.years || o.GetHosting() != tc.hosting ||
				!o.GetCreateTime().AsTime().Equal(now.Truncate(time.Microsecond)) || o.GetBundleId() != "" || o.GetPayTime() != nil {
				t.Errorf("order = %v, want a new UNPAID order echoing the request", o)
			}
		})
	}
}

// request_id makes CreateOrder idempotent per account.
func TestCreateOrderIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	req := &orderv1.CreateOrderRequest{RequestId: "checkout-42", ProductId: "dv-multi", DomainCount: 3, SubscriptionYears: 2}
	first, err := e.a.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := first.GetOrder().GetOrderId()
	// Repeats, some at once, return the same order.
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			resp, err := e.a.CreateOrder(ctx, req)
			if err != nil {
				t.Errorf("repeat %d: %v", i, err)
			}
			got[i] = resp.GetOrder().GetOrderId()
		})
	}
	wg.Wait()
	for i, g := range got {
		if g != id {
			t.Errorf("repeat %d made order %s, want %s", i, g, id)
		}
	}
	// The same request_id with other parameters is a conflict.
	for _, change := range []func(r *orderv1.CreateOrderRequest){
		func(r *orderv1.CreateOrderRequest) { r.DomainCount = 4 },
		func(r *orderv1.CreateOrderRequest) { r.SubscriptionYears = 3 },
		func(r *orderv1.CreateOrderRequest) { r.Hosting = true },
		func(r *orderv1.CreateOrderRequest) { r.ProductId = "ov-multi" },
	} {
		other := &orderv1.CreateOrderRequest{RequestId: req.RequestId, ProductId: req.ProductId, DomainCount: req.DomainCount, SubscriptionYears: req.SubscriptionYears}
		change(other)
		if _, err := e.a.CreateOrder(ctx, other); status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "request_id") {
			t.Errorf("CreateOrder(%v) = %v, want AlreadyExists naming request_id", other, err)
		}
	}
	// Another account's request ids are its own.
	resp, err := e.b.CreateOrder(ctx, req)
	if err != nil || resp.GetOrder().GetOrderId() == id {
		t.Errorf("B's CreateOrder with A's request_id = %v, %v; want a new order", resp.GetOrder(), err)
	}
	list, err := e.a.ListOrders(ctx, &orderv1.ListOrdersRequest{})
	if err != nil || len(list.GetOrders()) != 1 {
		t.Errorf("A has %d orders (%v), want 1", len(list.GetOrders()), err)
	}
}

func TestPayOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.createOrder(t, e.a, "dv-multi", 3, 3, true)
	payTime := e.clk.Now()
	got, err := pay(e.a, o.GetOrderId(), "stripe:pi_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetStatus() != paid || got.GetPaymentReference() != "stripe:pi_1" || !ids.Valid(ids.Bundle, got.GetBundleId()) ||
		!got.GetPayTime().AsTime().Equal(payTime.Truncate(time.Microsecond)) || len(got.GetCertificateIds()) != 0 {
		t.Errorf("paid order = %v, want PAID with the reference, a bundle id and the pay time", got)
	}
	if n := outboxLen(t, e.store); n != 1 {
		t.Errorf("outbox has %d messages, want 1", n)
	}
	if n := e.wake.n.Load(); n != 1 {
		t.Errorf("relay woken %d times, want 1", n)
	}

	// The same payment again: the same order, nothing new queued.
	e.clk.Advance(time.Second)
	again, err := pay(e.a, o.GetOrderId(), "stripe:pi_1")
	if err != nil || again.GetBundleId() != got.GetBundleId() || !again.GetPayTime().AsTime().Equal(got.GetPayTime().AsTime()) {
		t.Errorf("repeated PayOrder = %v, %v; want the order as first paid", again, err)
	}
	// Another payment of a paid order is refused.
	if _, err := pay(e.a, o.GetOrderId(), "stripe:pi_2"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PayOrder with another reference = %v, want FailedPrecondition", err)
	}
	if n := outboxLen(t, e.store); n != 1 {
		t.Errorf("outbox has %d messages after repeats, want 1", n)
	}
	if n := e.wake.n.Load(); n != 1 {
		t.Errorf("relay woken %d times after repeats, want 1", n)
	}
	if ref := getOrder(t, e.a, o.GetOrderId()).GetPaymentReference(); ref != "stripe:pi_1" {
		t.Errorf("payment reference is %q, want the first one", ref)
	}
}

// Two different payments of one order at once: exactly one wins, one message is queued.
func TestPayOrderConcurrentPayments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.createOrder(t, e.a, "dv-single", 1, 2, false)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, errs[i] = pay(e.a, o.GetOrderId(), fmt.Sprint("ref-", i)) })
	}
	wg.Wait()
	codesGot := []codes.Code{status.Code(errs[0]), status.Code(errs[1])}
	slices.Sort(codesGot)
	if !slices.Equal(codesGot, []codes.Code{codes.OK, codes.FailedPrecondition}) {
		t.Errorf("codes %v, want one OK and one FailedPrecondition", codesGot)
	}
	if n := outboxLen(t, e.store); n != 1 {
		t.Errorf("outbox has %d messages, want 1", n)
	}
}

func TestPayOrderInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.createOrder(t, e.a, "dv-single", 1, 1, false)
	for _, tc := range []struct {
		name, id, ref, field string
	}{
		{"no order_id", "", "r", "order_id"},
		{"malformed order_id", "ord_1", "r", "order_id"},
		{"no payment_reference", o.GetOrderId(), "", "payment_reference"},
		{"payment_reference with a space", o.GetOrderId(), "pay ment", "payment_reference"},
		{"overlong payment_reference", o.GetOrderId(), strings.Repeat("p", 129), "payment_reference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pay(e.a, tc.id, tc.ref)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	if got := getOrder(t, e.a, o.GetOrderId()); got.GetStatus() != unpaid {
		t.Errorf("order is %v after invalid payments, want UNPAID", got.GetStatus())
	}
}

// A cancelled order cannot be paid, and the refusal writes nothing.
func TestCancelThenPay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.createOrder(t, e.a, "dv-single", 1, 1, false)
	c, err := cancel(e.a, o.GetOrderId())
	if err != nil || c.GetStatus() != cancelled || c.GetCancelTime() == nil {
		t.Fatalf("CancelOrder = %v, %v; want CANCELLED with a cancel time", c, err)
	}
	again, err := cancel(e.a, o.GetOrderId())
	if err != nil || again.GetStatus() != cancelled || !again.GetCancelTime().AsTime().Equal(c.GetCancelTime().AsTime()) {
		t.Errorf("second CancelOrder = %v, %v; want the order unchanged", again, err)
	}
	if _, err := pay(e.a, o.GetOrderId(), "ref"); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PayOrder of a cancelled order = %v, want FailedPrecondition", err)
	}
	got := getOrder(t, e.a, o.GetOrderId())
	if got.GetStatus() != cancelled || got.GetPaymentReference() != "" || got.GetBundleId() != "" || got.GetPayTime() != nil {
		t.Errorf("order after the refused payment = %v, want it untouched", got)
	}
	if n := outboxLen(t, e.store); n != 0 {
		t.Errorf("outbox has %d messages after a refused payment, want 0", n)
	}
	if n := e.wake.n.Load(); n != 0 {
		t.Errorf("relay woken %d times for a refused payment", n)
	}
}

func TestCancelPaid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.paidOrder(t)
	if _, err := cancel(e.a, o.GetOrderId()); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("CancelOrder of a paid order = %v, want FailedPrecondition", err)
	}
	if got := getOrder(t, e.a, o.GetOrderId()); got.GetStatus() != paid || got.GetCancelTime() != nil {
		t.Errorf("order after the refused cancel = %v, want PAID", got)
	}
}

func TestMalformedOrderIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	calls := map[string]func(id string) error{
		"GetOrder": func(id string) error {
			_, err := e.a.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: id})
			return err
		},
		"PayOrder":    func(id string) error { _, err := pay(e.a, id, "ref"); return err },
		"CancelOrder": func(id string) error { _, err := cancel(e.a, id); return err },
	}
	for name, call := range calls {
		for _, id := range []string{"", "ord_123", "ORD_01JD3Y4M6Q0H3T5R2E8W9XKZ7B", ids.New(ids.Bundle, e.clk.Now())} {
			t.Run(name+" "+id, func(t *testing.T) { grpctest.WantInvalidArgument(t, call(id), "order_id") })
		}
	}
}

// Account B learns nothing of A's order and cannot change it.
func TestOrderTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	o := e.createOrder(t, e.a, "dv-multi", 2, 2, false)
	tests := []struct {
		name string
		call func() error
	}{
		{"GetOrder", func() error {
			_, err := e.b.GetOrder(context.Background(), &orderv1.GetOrderRequest{OrderId: o.GetOrderId()})
			return err
		}},
		{"PayOrder", func() error { _, err := pay(e.b, o.GetOrderId(), "ref"); return err }},
		{"CancelOrder", func() error { _, err := cancel(e.b, o.GetOrderId()); return err }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); status.Code(err) != codes.NotFound {
				t.Errorf("got %v, want NotFound", err)
			}
		})
	}
	if got := getOrder(t, e.a, o.GetOrderId()); got.GetStatus() != unpaid {
		t.Errorf("A's order is %v after B's attempts, want UNPAID", got.GetStatus())
	}
	if n := outboxLen(t, e.store); n != 0 {
		t.Errorf("outbox has %d messages after B's PayOrder, want 0", n)
	}
	list, err := e.b.ListOrders(context.Background(), &orderv1.ListOrdersRequest{})
	if err != nil || len(list.GetOrders()) != 0 {
		t.Errorf("B's ListOrders = %v, %v; want empty", list.GetOrders(), err)
	}
}

// listOrders pages through ListOrders with req's filters and returns the order ids.
func listOrders(t *testing.T, c orderv1.OrderServiceClient, req *orderv1.ListOrdersRequest) ([]string, int) {
	t.Helper()
	return grpctest.Pages(t, func(token string) ([]string, string, error) {
		req.PageToken = token
		resp, err := c.ListOrders(context.Background(), req)
		var ids []string
		for _, o := range resp.GetOrders() {
			ids = append(ids, o.GetOrderId())
		}
		return ids, resp.GetNextPageToken(), err
	})
}

func TestListOrders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Five orders of A, oldest first: 0 and 3 paid, 2 cancelled, 1 and 4 unpaid. One of B.
	var os []string
	for range 5 {
		os = append(os, e.createOrder(t, e.a, "dv-single", 1, 1, false).GetOrderId())
	}
	e.createOrder(t, e.b, "dv-single", 1, 1, false)
	for _, i := range []int{0, 3} {
		if _, err := pay(e.a, os[i], "ref"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cancel(e.a, os[2]); err != nil {
		t.Fatal(err)
	}
	newestFirst := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, os[i])
		}
		return out
	}
	tests := []struct {
		name      string
		req       *orderv1.ListOrdersRequest
		want      []string
		wantPages int
	}{
		{"all, pages of 2", &orderv1.ListOrdersRequest{PageSize: 2}, newestFirst(4, 3, 2, 1, 0), 3},
		{"all, default page", &orderv1.ListOrdersRequest{}, newestFirst(4, 3, 2, 1, 0), 1},
		{"exact page", &orderv1.ListOrdersRequest{PageSize: 5}, newestFirst(4, 3, 2, 1, 0), 1},
		{"paid", &orderv1.ListOrdersRequest{PageSize: 1, Status: paid}, newestFirst(3, 0), 2},
		{"unpaid", &orderv1.ListOrdersRequest{PageSize: 2, Status: unpaid}, newestFirst(4, 1), 1},
		{"cancelled", &orderv1.ListOrdersRequest{Status: cancelled}, newestFirst(2), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := listOrders(t, e.a, tc.req)
			if !slices.Equal(got, tc.want) || pages != tc.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tc.want, tc.wantPages)
			}
		})
	}

	first, err := e.a.ListOrders(context.Background(), &orderv1.ListOrdersRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	tok := first.GetNextPageToken()
	bad := []struct {
		name   string
		client orderv1.OrderServiceClient
		req    *orderv1.ListOrdersRequest
		field  string
	}{
		{"token with another status", e.a, &orderv1.ListOrdersRequest{PageToken: tok, Status: paid}, "page_token"},
		{"token of another account", e.b, &orderv1.ListOrdersRequest{PageToken: tok}, "page_token"},
		{"garbage token", e.a, &orderv1.ListOrdersRequest{PageToken: "%%%"}, "page_token"},
		{"page_size 501", e.a, &orderv1.ListOrdersRequest{PageSize: 501}, "page_size"},
		{"negative page_size", e.a, &orderv1.ListOrdersRequest{PageSize: -2}, "page_size"},
		{"unknown status", e.a, &orderv1.ListOrdersRequest{Status: 42}, "status"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.ListOrders(context.Background(), tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
}

// TestRefundWindow: a refund is asked for within 30 days of the payment, and only for a PAID
// order: its refund is REQUESTED with a cancellation queued in the outbox, asking again changes
// nothing, and on the 30th day after payment, or for an unpaid order, it is refused naming why.
func TestRefundWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	refund := func(id string) (*orderv1.Order, error) {
		resp, err := e.a.RefundOrder(context.Background(), &orderv1.RefundOrderRequest{OrderId: id})
		return resp.GetOrder(), err
	}
	o := e.paidOrder(t)
	e.clk.Advance(29 * 24 * time.Hour)
	got, err := refund(o.GetOrderId())
	if err != nil || got.GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_REQUESTED || got.GetStatus() != paid {
		t.Fatalf("RefundOrder on day 29 = %v %v, %v; want PAID, REQUESTED", got.GetStatus(), got.GetRefundStatus(), err)
	}
	before, err := e.store.OutboxLen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := refund(o.GetOrderId()); err != nil {
		t.Fatalf("RefundOrder again: %v", err)
	}
	if after, _ := e.store.OutboxLen(context.Background()); after != before {
		t.Errorf("asking again queued %d more messages, want none", after-before)
	}

	late := e.paidOrder(t)
	e.clk.Advance(30 * 24 * time.Hour)
	_, err = refund(late.GetOrderId())
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "30 days") {
		t.Errorf("RefundOrder 30 days after payment = %v, want FailedPrecondition naming the 30 days", err)
	}
	unpaid := e.createOrder(t, e.a, "dv-single", 1, 1, false)
	if _, err := refund(unpaid.GetOrderId()); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "UNPAID") {
		t.Errorf("RefundOrder of an unpaid order = %v, want FailedPrecondition naming UNPAID", err)
	}
	if got := getOrder(t, e.a, late.GetOrderId()); got.GetRefundStatus() != orderv1.RefundStatus_REFUND_STATUS_UNSPECIFIED {
		t.Errorf("refused refund left the order %v", got.GetRefundStatus())
	}
}
