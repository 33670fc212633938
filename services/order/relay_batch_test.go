package order_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/order"
)

// batcher is a BatchBundleCreator in front of a real lifecycle service: it counts batch and
// single calls, lets batch change a batch call's answer (nil: passed on), and refuses single
// CreateBundle calls for the bundle refuse with InvalidArgument.
type batcher struct {
	next          lifecyclev1.LifecycleServiceClient
	batch         func(context.Context, *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error)
	refuse        string
	corrupt       string // the order whose outbox payload the test makes undecodable
	batches, ones atomic.Int32
	sizes         atomic.Int32 // requests sent in batch calls, in total
}

func (b *batcher) CreateBundle(ctx context.Context, in *lifecyclev1.CreateBundleRequest, opts ...grpc.CallOption) (*lifecyclev1.CreateBundleResponse, error) {
	b.ones.Add(1)
	if in.GetBundleId() == b.refuse {
		return nil, status.Error(codes.InvalidArgument, "bundle_id: refused by the test")
	}
	return b.next.CreateBundle(ctx, in, opts...)
}

func (b *batcher) BatchCreateBundles(ctx context.Context, in *lifecyclev1.BatchCreateBundlesRequest, opts ...grpc.CallOption) (*lifecyclev1.BatchCreateBundlesResponse, error) {
	b.batches.Add(1)
	b.sizes.Add(int32(len(in.GetRequests())))
	if b.batch != nil {
		return b.batch(ctx, in)
	}
	return b.next.BatchCreateBundles(ctx, in, opts...)
}

// With a client that has BatchCreateBundles, a sweep's CreateBundle messages go in one call; the
// messages whose bundles came back are delivered, the others retry with their own backoff, and a
// batch refused because of one message is delivered one by one so the others still go through.
func TestRelayBatchCreateBundles(t *testing.T) {
	t.Parallel()
	const n = 5
	tests := []struct {
		name string
		// setup adjusts the client for the sweep; orders are the paid orders, in outbox order.
		setup     func(b *batcher, orders []*orderv1.Order)
		batches   int32 // batch calls made
		ones      int32 // single calls made
		failed    int   // messages left in the outbox
		lastError string
	}{
		{"all in one call", func(*batcher, []*orderv1.Order) {}, 1, 0, 0, ""},
		{"the call fails: all retry", func(b *batcher, _ []*orderv1.Order) {
			b.batch = func(context.Context, *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
				return nil, status.Error(codes.Unavailable, "lifecycle restarting")
			}
		}, 1, 0, n, "Unavailable"},
		{"one bad message: the others one by one", func(b *batcher, orders []*orderv1.Order) {
			b.refuse = orders[2].GetBundleId()
			b.batch = func(context.Context, *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
				return nil, status.Error(codes.InvalidArgument, "requests[2].bundle_id: refused by the test")
			}
		}, 1, n, 1, "refused by the test"},
		// The undecodable message fails before the call and alone; the refused batch's fallback
		// delivers the others (deliverBatch hands back only the messages it sent).
		{"an undecodable payload and a refused batch", func(b *batcher, orders []*orderv1.Order) {
			b.refuse = orders[2].GetBundleId()
			b.batch = func(context.Context, *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
				return nil, status.Error(codes.InvalidArgument, "requests[1].bundle_id: refused by the test")
			}
			b.corrupt = orders[0].GetOrderId()
		}, 1, n - 1, 2, ""},
		{"an answer short of one bundle", func(b *batcher, _ []*orderv1.Order) {
			b.batch = func(ctx context.Context, in *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
				resp, err := b.next.BatchCreateBundles(ctx, in)
				if err == nil {
					resp.Bundles = resp.Bundles[:len(resp.Bundles)-1]
				}
				return resp, err
			}
		}, 1, 0, 1, "fewer bundles"},
		{"an answer for another bundle", func(b *batcher, _ []*orderv1.Order) {
			b.batch = func(ctx context.Context, in *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
				resp, err := b.next.BatchCreateBundles(ctx, in)
				if err == nil {
					resp.Bundles[0], resp.Bundles[1] = resp.Bundles[1], resp.Bundles[0]
				}
				return resp, err
			}
		}, 1, 0, 2, "another bundle"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			lc := e.startLifecycle(t)
			b := &batcher{next: lc.svc}
			relay := e.newRelay(t, e.store, b, order.RelayConfig{})
			var orders []*orderv1.Order
			for range n {
				orders = append(orders, e.paidOrder(t))
			}
			tc.setup(b, orders)
			if b.corrupt != "" {
				if err := e.db.Write(context.Background(), func(tx *db.Tx) error {
					_, err := tx.Exec(`UPDATE outbox SET payload = 'not json' WHERE order_id = ?`, b.corrupt)
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			sweep(t, relay, n)
			if got := b.batches.Load(); got != tc.batches {
				t.Errorf("%d BatchCreateBundles calls, want %d", got, tc.batches)
			}
			if got := b.ones.Load(); got != tc.ones {
				t.Errorf("%d CreateBundle calls, want %d", got, tc.ones)
			}
			if got := outboxLen(t, e.store); got != tc.failed {
				t.Fatalf("outbox has %d messages after the sweep, want %d", got, tc.failed)
			}
			left, err := e.store.DueOutbox(context.Background(), e.clk.Now().Add(testBackoff.Max*2), n)
			if err != nil {
				t.Fatal(err)
			}
			undelivered := map[string]bool{}
			for _, m := range left {
				undelivered[m.OrderID] = true
				if m.Attempts != 1 || !strings.Contains(m.LastError.String, tc.lastError) || !db.FromMicros(m.NextAttemptTime).After(e.clk.Now()) {
					t.Errorf("message of %s: attempts %d, last error %q, next %v; want 1, %q, a backoff", m.OrderID, m.Attempts, m.LastError.String, db.FromMicros(m.NextAttemptTime), tc.lastError)
				}
			}
			for _, o := range orders {
				got := getOrder(t, e.a, o.GetOrderId())
				if delivered := len(got.GetCertificateIds()) == 3; delivered == undelivered[o.GetOrderId()] {
					t.Errorf("order %s: certificates %v, but the outbox still has its message: %v", o.GetOrderId(), got.GetCertificateIds(), undelivered[o.GetOrderId()])
				}
			}
		})
	}
}

// Sweeps larger than the lifecycle service's batch limit go in several calls of at most 1000.
func TestRelayBatchChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	b := &batcher{next: lc.svc}
	// A call timeout far above the default 5s: a 1000-bundle transaction on PostgreSQL took more
	// than 5s while other tests loaded the machine, and this test is about chunking, not timing.
	relay := e.newRelay(t, e.store, b, order.RelayConfig{Batch: 1001, CallTimeout: 2 * time.Minute})
	b.batch = func(ctx context.Context, in *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
		if len(in.GetRequests()) > 1000 {
			t.Errorf("a batch of %d requests", len(in.GetRequests()))
		}
		return b.next.BatchCreateBundles(ctx, in)
	}
	for range 1001 {
		e.paidOrder(t)
	}
	sweep(t, relay, 1001)
	if got, size := b.batches.Load(), b.sizes.Load(); got != 2 || size != 1001 {
		t.Errorf("%d batch calls carrying %d requests, want 2 carrying 1001", got, size)
	}
	if got := outboxLen(t, e.store); got != 0 {
		t.Errorf("outbox has %d messages, want 0", got)
	}
}
