package lifecycle_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

// BatchCreateBundles creates every bundle of a batch or none: each request is validated as
// CreateBundle validates it (the error names requests[i].field), a repeated batch answers the
// same bundles and creates nothing, more than 1000 requests are refused, and only the order
// service's credential may call it.
func TestBatchCreateBundles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	batch := func(n int) []*lifecyclev1.CreateBundleRequest {
		reqs := make([]*lifecyclev1.CreateBundleRequest, n)
		for i := range reqs {
			reqs[i] = e.request(e.accA, int32(1+i%3), i%3 != 0)
		}
		return reqs
	}
	// replayed is a batch already delivered once, before the table runs.
	replayed := batch(5)
	first, err := e.svc.BatchCreateBundles(context.Background(), &lifecyclev1.BatchCreateBundlesRequest{Requests: replayed})
	if err != nil {
		t.Fatal(err)
	}
	// taken is a bundle id already used by another order.
	takenBundle := e.create(t, e.accA, 1, false)
	taken := takenBundle.GetBundleId()

	tests := []struct {
		name   string
		client func() lifecyclev1.LifecycleServiceClient
		reqs   func() []*lifecyclev1.CreateBundleRequest
		code   codes.Code
		field  string // the field the error names
		want   int    // bundles created by the call
	}{
		{"creates all", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return batch(20) },
			codes.OK, "", 20},
		{"one request", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return batch(1) },
			codes.OK, "", 1},
		{"replay creates nothing", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return replayed },
			codes.OK, "", 0},
		{"replay inside a new batch", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			return append(batch(3), replayed[2])
		}, codes.OK, "", 3},
		{"one invalid request", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(10)
			reqs[7].SubscriptionYears = 4
			return reqs
		}, codes.InvalidArgument, "requests[7].subscription_years", 0},
		{"one request without product", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(3)
			reqs[0].Product = nil
			return reqs
		}, codes.InvalidArgument, "requests[0].product.product_id", 0},
		{"the same bundle twice", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(3)
			reqs[2] = proto.Clone(reqs[0]).(*lifecyclev1.CreateBundleRequest)
			return reqs
		}, codes.InvalidArgument, "requests[2].bundle_id", 0},
		// Found only in the transaction, after bundles before it were written: they are rolled back.
		{"a bundle id of another order", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(4)
			reqs[3].BundleId = taken
			return reqs
		}, codes.AlreadyExists, "requests[3].bundle_id", 0},
		{"an order that has another bundle", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(4)
			reqs[2].OrderId = takenBundle.GetOrderId()
			return reqs
		}, codes.AlreadyExists, "requests[2].order_id", 0},
		{"one order twice with two bundle ids", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest {
			reqs := batch(4)
			reqs[3].OrderId = reqs[1].OrderId
			return reqs
		}, codes.AlreadyExists, "requests[3].order_id", 0},
		{"empty", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return nil },
			codes.InvalidArgument, "requests", 0},
		{"1000 requests", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return batch(1000) },
			codes.OK, "", 1000},
		{"1001 requests", func() lifecyclev1.LifecycleServiceClient { return e.svc }, func() []*lifecyclev1.CreateBundleRequest { return batch(1001) },
			codes.InvalidArgument, "requests", 0},
		{"customer key", func() lifecyclev1.LifecycleServiceClient { return e.a }, func() []*lifecyclev1.CreateBundleRequest { return batch(2) },
			codes.PermissionDenied, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			before := countBundles(t, e)
			reqs := tc.reqs()
			resp, err := tc.client().BatchCreateBundles(ctx, &lifecyclev1.BatchCreateBundlesRequest{Requests: reqs})
			switch {
			case tc.code == codes.InvalidArgument:
				grpctest.WantInvalidArgument(t, err, tc.field)
			case status.Code(err) != tc.code:
				t.Fatalf("BatchCreateBundles = %v, want %v", err, tc.code)
			case tc.field != "" && !strings.HasPrefix(status.Convert(err).Message(), tc.field+":"):
				t.Errorf("BatchCreateBundles = %v, want an error naming %s", err, tc.field)
			}
			if got := countBundles(t, e) - before; got != tc.want {
				t.Errorf("%d bundles created, want %d", got, tc.want)
			}
			if err != nil {
				return
			}
			if len(resp.GetBundles()) != len(reqs) {
				t.Fatalf("%d bundles answered for %d requests", len(resp.GetBundles()), len(reqs))
			}
			for i, b := range resp.GetBundles() {
				if b.GetBundleId() != reqs[i].GetBundleId() || b.GetOrderId() != reqs[i].GetOrderId() {
					t.Errorf("bundles[%d] = %s (order %s), want %s (order %s)", i, b.GetBundleId(), b.GetOrderId(), reqs[i].GetBundleId(), reqs[i].GetOrderId())
				}
				if n := len(b.GetCertificates()); n != int(reqs[i].GetSubscriptionYears()) {
					t.Errorf("bundles[%d]: %d certificates, want %d", i, n, reqs[i].GetSubscriptionYears())
				}
			}
		})
	}
	// A replay answers the bundles of the first delivery: the same instances, not new ones.
	again, err := e.svc.BatchCreateBundles(context.Background(), &lifecyclev1.BatchCreateBundlesRequest{Requests: replayed})
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range again.GetBundles() {
		if got, want := fmt.Sprint(certIDs(b.GetCertificates())), fmt.Sprint(certIDs(first.GetBundles()[i].GetCertificates())); got != want {
			t.Errorf("replayed bundles[%d]: certificates %s, want %s", i, got, want)
		}
	}
}

// countBundles is how many bundles the service stores.
func countBundles(t *testing.T, e *env) int {
	t.Helper()
	var n int
	if err := e.db.Get(context.Background(), &n, `SELECT COUNT(*) FROM bundles`); err != nil {
		t.Fatal(err)
	}
	return n
}
