package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/ids"
)

const (
	pending      = lifecyclev1.CertificateState_CERTIFICATE_STATE_PENDING_APPLICATION
	notActivated = lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED
)

// Only the order service's credential may create bundles.
func TestCreateBundleNeedsServiceRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.a.CreateBundle(ctx, e.request(e.accA, 2, false)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("CreateBundle with a customer key = %v, want PermissionDenied", err)
	}
	resp, err := e.a.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(resp.GetBundles()) != 0 {
		t.Errorf("bundles after a refused CreateBundle: %v, %v; want none", resp.GetBundles(), err)
	}
	// And the service credential may not read customers' bundles.
	if _, err := e.svc.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListBundles with the service key = %v, want PermissionDenied", err)
	}
}

// A bundle has one instance per subscription year: the first PENDING_APPLICATION, the rest
// NOT_ACTIVATED, sequence 1..n, each with one "created" history event.
func TestCreateBundleInstances(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		years   int32
		hosting bool
		want    []lifecyclev1.CertificateState
	}{
		{"3 years hosted", 3, true, []lifecyclev1.CertificateState{pending, notActivated, notActivated}},
		{"2 years not hosted", 2, false, []lifecyclev1.CertificateState{pending, notActivated}},
		{"2 years hosted", 2, true, []lifecyclev1.CertificateState{pending, notActivated}},
		{"1 year not hosted", 1, false, []lifecyclev1.CertificateState{pending}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			req := e.request(e.accA, tc.years, tc.hosting)
			resp, err := e.svc.CreateBundle(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			b := resp.GetBundle()
			if b.GetBundleId() != req.GetBundleId() || b.GetOrderId() != req.GetOrderId() || b.GetAccountId() != e.accA ||
				b.GetSubscriptionYears() != tc.years || b.GetHosting() != tc.hosting || b.GetDomainCount() != 3 ||
				b.GetProduct().GetProductId() != "dv-multi" || b.GetProduct().GetValidationType() != lifecyclev1.ValidationType_VALIDATION_TYPE_DV ||
				b.GetProduct().GetDomainType() != lifecyclev1.DomainType_DOMAIN_TYPE_MULTI {
				t.Errorf("bundle = %v, want the request's fields", b)
			}
			certs := b.GetCertificates()
			if len(certs) != len(tc.want) {
				t.Fatalf("%d certificates, want %d", len(certs), len(tc.want))
			}
			for i, c := range certs {
				if c.GetSequence() != int32(i+1) || c.GetState() != tc.want[i] || c.GetBundleId() != b.GetBundleId() ||
					!ids.Valid(ids.Certificate, c.GetCertificateId()) || c.GetCoverageStartTime() != nil {
					t.Errorf("certificate %d = %v, want sequence %d, state %v, no coverage yet", i, c, i+1, tc.want[i])
				}
				history, err := e.a.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: c.GetCertificateId()})
				if err != nil {
					t.Fatal(err)
				}
				ev := history.GetEvents()
				if len(ev) != 1 {
					t.Fatalf("certificate %d has %d events, want 1", i, len(ev))
				}
				if ev[0].GetFromState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED || ev[0].GetToState() != tc.want[i] ||
					ev[0].GetActor() != lifecyclev1.Actor_ACTOR_SYSTEM || ev[0].GetBundleId() != b.GetBundleId() ||
					ev[0].GetCertificateId() != c.GetCertificateId() || !strings.Contains(ev[0].GetReason(), req.GetOrderId()) {
					t.Errorf("certificate %d event = %v, want creation into %v by the system, naming the order", i, ev[0], tc.want[i])
				}
			}
			// The customer sees the same bundle.
			got, err := e.a.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: b.GetBundleId()})
			if err != nil || !slices.Equal(certIDs(got.GetBundle().GetCertificates()), certIDs(certs)) {
				t.Errorf("GetBundle = %v, %v; want the created certificates", got, err)
			}
		})
	}
}

// CreateBundle is idempotent on bundle_id: a repeat (the relay retrying after a lost answer),
// even concurrent, returns the bundle made the first time and makes nothing new.
func TestCreateBundleIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	req := e.request(e.accA, 3, true)
	first, err := e.svc.CreateBundle(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	want := certIDs(first.GetBundle().GetCertificates())
	var wg sync.WaitGroup
	errs := make([]error, 5)
	got := make([][]string, 5)
	for i := range 5 {
		wg.Go(func() {
			resp, err := e.svc.CreateBundle(ctx, req)
			errs[i], got[i] = err, certIDs(resp.GetBundle().GetCertificates())
		})
	}
	wg.Wait()
	for i := range 5 {
		if errs[i] != nil || !slices.Equal(got[i], want) {
			t.Errorf("repeat %d: certificates %v, %v; want %v", i, got[i], errs[i], want)
		}
	}
	list, err := e.a.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{})
	if err != nil || len(list.GetCertificates()) != 3 {
		t.Errorf("account has %d certificates after repeats (%v), want 3", len(list.GetCertificates()), err)
	}
	history, err := e.a.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: want[0]})
	if err != nil || len(history.GetEvents()) != 1 {
		t.Errorf("first certificate has %d events after repeats (%v), want 1", len(history.GetEvents()), err)
	}
}

func TestCreateBundleConflicts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	orig := e.request(e.accA, 2, false)
	if _, err := e.svc.CreateBundle(ctx, orig); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(r *lifecyclev1.CreateBundleRequest)
		field  string
	}{
		{"same bundle_id, another order", func(r *lifecyclev1.CreateBundleRequest) { r.OrderId = ids.New(ids.Order, e.clk.Now()) }, "bundle_id"},
		{"same bundle_id, another account", func(r *lifecyclev1.CreateBundleRequest) { r.AccountId = e.accB }, "bundle_id"},
		{"same order, another bundle_id", func(r *lifecyclev1.CreateBundleRequest) { r.BundleId = ids.New(ids.Bundle, e.clk.Now()) }, "order_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request(e.accA, 2, false)
			req.BundleId, req.OrderId, req.AccountId = orig.BundleId, orig.OrderId, orig.AccountId
			tc.change(req)
			_, err := e.svc.CreateBundle(ctx, req)
			if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("CreateBundle = %v, want AlreadyExists naming %s", err, tc.field)
			}
		})
	}
	for _, c := range []struct {
		name   string
		client lifecyclev1.LifecycleServiceClient
		want   int
	}{{"A", e.a, 1}, {"B", e.b, 0}} {
		resp, err := c.client.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{})
		if err != nil || len(resp.GetBundles()) != c.want {
			t.Errorf("account %s has %d bundles (%v), want %d", c.name, len(resp.GetBundles()), err, c.want)
		}
	}
}

func TestCreateBundleInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		change func(r *lifecyclev1.CreateBundleRequest)
		field  string
	}{
		{"no bundle_id", func(r *lifecyclev1.CreateBundleRequest) { r.BundleId = "" }, "bundle_id"},
		{"malformed bundle_id", func(r *lifecyclev1.CreateBundleRequest) { r.BundleId = "bdl_123" }, "bundle_id"},
		{"order id as bundle_id", func(r *lifecyclev1.CreateBundleRequest) { r.BundleId = r.OrderId }, "bundle_id"},
		{"no account_id", func(r *lifecyclev1.CreateBundleRequest) { r.AccountId = "" }, "account_id"},
		{"malformed account_id", func(r *lifecyclev1.CreateBundleRequest) { r.AccountId = "acme" }, "account_id"},
		{"malformed order_id", func(r *lifecyclev1.CreateBundleRequest) { r.OrderId = "ord_" }, "order_id"},
		{"no product", func(r *lifecyclev1.CreateBundleRequest) { r.Product = nil }, "product.product_id"},
		{"no validation type", func(r *lifecyclev1.CreateBundleRequest) { r.Product.ValidationType = 0 }, "product.validation_type"},
		{"unknown validation type", func(r *lifecyclev1.CreateBundleRequest) { r.Product.ValidationType = 9 }, "product.validation_type"},
		{"no domain type", func(r *lifecyclev1.CreateBundleRequest) { r.Product.DomainType = 0 }, "product.domain_type"},
		{"unknown domain type", func(r *lifecyclev1.CreateBundleRequest) { r.Product.DomainType = 9 }, "product.domain_type"},
		{"domain_count 0", func(r *lifecyclev1.CreateBundleRequest) { r.DomainCount = 0 }, "domain_count"},
		{"domain_count 1001", func(r *lifecyclev1.CreateBundleRequest) { r.DomainCount = 1001 }, "domain_count"},
		{"0 years", func(r *lifecyclev1.CreateBundleRequest) { r.SubscriptionYears = 0 }, "subscription_years"},
		{"4 years", func(r *lifecyclev1.CreateBundleRequest) { r.SubscriptionYears = 4 }, "subscription_years"},
		{"hosting with 1 year", func(r *lifecyclev1.CreateBundleRequest) { r.SubscriptionYears, r.Hosting = 1, true }, "hosting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := e.request(e.accA, 2, true)
			tc.change(req)
			_, err := e.svc.CreateBundle(context.Background(), req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	resp, err := e.a.ListBundles(context.Background(), &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(resp.GetBundles()) != 0 {
		t.Errorf("invalid requests left bundles behind: %v, %v", resp.GetBundles(), err)
	}
}

// ListBundles pages newest first, with each bundle's certificates, and only the caller's.
func TestListBundles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var want []string
	for _, years := range []int32{1, 3, 2} {
		want = slices.Insert(want, 0, e.create(t, e.accA, years, false).GetBundleId())
	}
	e.create(t, e.accB, 2, false)
	bundles, pages := grpctest.Pages(t, func(token string) ([]*lifecyclev1.Bundle, string, error) {
		resp, err := e.a.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{PageSize: 2, PageToken: token})
		return resp.GetBundles(), resp.GetNextPageToken(), err
	})
	var got []string
	var certs []int
	for _, b := range bundles {
		got = append(got, b.GetBundleId())
		certs = append(certs, len(b.GetCertificates()))
	}
	if pages != 2 {
		t.Errorf("%d pages of 2 for 3 bundles, want 2", pages)
	}
	if !slices.Equal(got, want) {
		t.Errorf("bundles %v, want %v (newest first)", got, want)
	}
	if fmt.Sprint(certs) != "[2 3 1]" {
		t.Errorf("certificates per bundle %v, want [2 3 1]", certs)
	}
	_, err := e.b.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{PageSize: 2, PageToken: firstToken(t, e.a)})
	grpctest.WantInvalidArgument(t, err, "page_token")
}

func firstToken(t *testing.T, c lifecyclev1.LifecycleServiceClient) string {
	t.Helper()
	resp, err := c.ListBundles(context.Background(), &lifecyclev1.ListBundlesRequest{PageSize: 1})
	if err != nil || resp.GetNextPageToken() == "" {
		t.Fatalf("ListBundles page 1: %v, %v; want a next page", resp, err)
	}
	return resp.GetNextPageToken()
}
