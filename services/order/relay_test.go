package order_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/order"
	"github.com/certhosting/certhosting/services/order/store"
)

// creator is a hand-written BundleCreator in front of another (usually a real lifecycle
// service): it counts calls, fails the first `failures` of them with Unavailable without passing
// them on, runs after once a passed-on call succeeded, and reports each call on called if set
// (as far as its buffer goes).
type creator struct {
	next     order.BundleCreator
	failures int32
	after    func()
	called   chan struct{}
	calls    atomic.Int32
}

func (c *creator) CreateBundle(ctx context.Context, in *lifecyclev1.CreateBundleRequest, opts ...grpc.CallOption) (*lifecyclev1.CreateBundleResponse, error) {
	if c.called != nil {
		defer func() {
			select {
			case c.called <- struct{}{}:
			default: // nobody is counting this many calls
			}
		}()
	}
	if c.calls.Add(1) <= c.failures {
		return nil, status.Error(codes.Unavailable, "lifecycle restarting")
	}
	resp, err := c.next.CreateBundle(ctx, in, opts...)
	if err == nil && c.after != nil {
		c.after()
	}
	return resp, err
}

// creatorFunc is a BundleCreator made of a function, for answers no real server gives.
type creatorFunc func(context.Context, *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error)

func (f creatorFunc) CreateBundle(ctx context.Context, in *lifecyclev1.CreateBundleRequest, _ ...grpc.CallOption) (*lifecyclev1.CreateBundleResponse, error) {
	return f(ctx, in)
}

func sweep(t *testing.T, r *order.Relay, want int) {
	t.Helper()
	n, err := r.Sweep(context.Background())
	if err != nil || n != want {
		t.Fatalf("Sweep = %d, %v; want %d, nil", n, err, want)
	}
}

// pending returns the one undelivered message in st, due or not.
func pending(t *testing.T, e *env, st *store.Store) store.OutboxMessage {
	t.Helper()
	ms, err := st.DueOutbox(context.Background(), e.clk.Now().Add(24*time.Hour), 10)
	if err != nil || len(ms) != 1 {
		t.Fatalf("outbox = %v, %v; want one message", ms, err)
	}
	return ms[0]
}

// wantDelivered checks that order o has the certificates of its bundle in the lifecycle service,
// and that the account has exactly that one bundle there.
func wantDelivered(t *testing.T, lc lifecycleService, o *orderv1.Order, deliveredAt time.Time) {
	t.Helper()
	resp, err := lc.a.GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
	if err != nil {
		t.Fatalf("GetBundle(%s) from the lifecycle service: %v", o.GetBundleId(), err)
	}
	b := resp.GetBundle()
	if want := certIDs(b); !slices.Equal(o.GetCertificateIds(), want) || len(want) != int(o.GetSubscriptionYears()) {
		t.Errorf("order's certificate_ids %v, want the bundle's %v", o.GetCertificateIds(), want)
	}
	if !o.GetBundleDeliveryTime().AsTime().Equal(deliveredAt.Truncate(time.Microsecond)) {
		t.Errorf("bundle_delivery_time %v, want %v", o.GetBundleDeliveryTime().AsTime(), deliveredAt)
	}
	if b.GetOrderId() != o.GetOrderId() || b.GetSubscriptionYears() != o.GetSubscriptionYears() || b.GetHosting() != o.GetHosting() ||
		b.GetDomainCount() != o.GetDomainCount() || b.GetProduct().GetProductId() != o.GetProductId() ||
		b.GetProduct().GetValidationType() != lifecyclev1.ValidationType_VALIDATION_TYPE_DV ||
		b.GetProduct().GetDomainType() != lifecyclev1.DomainType_DOMAIN_TYPE_MULTI {
		t.Errorf("bundle %v does not match order %v", b, o)
	}
	list, err := lc.a.ListBundles(context.Background(), &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(list.GetBundles()) != 1 {
		t.Errorf("the account has %d bundles (%v), want exactly 1", len(list.GetBundles()), err)
	}
}

func certIDs(b *lifecyclev1.Bundle) []string {
	var out []string
	for _, c := range b.GetCertificates() {
		out = append(out, c.GetCertificateId())
	}
	return out
}

func TestRelayDelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	c := &creator{next: lc.svc}
	relay := e.newRelay(t, e.store, c, order.RelayConfig{})
	o := e.paidOrder(t)
	sweep(t, relay, 1)
	if n := outboxLen(t, e.store); n != 0 {
		t.Errorf("outbox has %d messages after delivery, want 0", n)
	}
	wantDelivered(t, lc, getOrder(t, e.a, o.GetOrderId()), e.clk.Now())
	sweep(t, relay, 0)
	if n := c.calls.Load(); n != 1 {
		t.Errorf("lifecycle called %d times, want 1", n)
	}
}

// A failed delivery is recorded with its backoff; the message waits until it is due, then goes.
func TestRelayRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	c := &creator{next: lc.svc, failures: 2}
	relay := e.newRelay(t, e.store, c, order.RelayConfig{})
	o := e.paidOrder(t)
	windows := []struct{ lo, hi time.Duration }{
		{testBackoff.Base / 2, testBackoff.Base}, // after the first failure
		{testBackoff.Base, 2 * testBackoff.Base}, // after the second
	}
	for i, w := range windows {
		start := e.clk.Now()
		sweep(t, relay, 1)
		m := pending(t, e, e.store)
		wait := db.FromMicros(m.NextAttemptTime).Sub(start)
		if m.Attempts != i+1 || !strings.Contains(m.LastError.String, "Unavailable") || wait < w.lo-time.Microsecond || wait > w.hi {
			t.Fatalf("after failure %d: attempts %d, last error %q, retry in %v; want %d, Unavailable, within [%v, %v]",
				i+1, m.Attempts, m.LastError.String, wait, i+1, w.lo, w.hi)
		}
		// Not due yet: a sweep does nothing, up to the microsecond before the retry time.
		e.clk.Advance(wait - time.Microsecond)
		sweep(t, relay, 0)
		if n := c.calls.Load(); n != int32(i+1) {
			t.Fatalf("lifecycle called %d times before the retry was due, want %d", n, i+1)
		}
		e.clk.Advance(time.Microsecond)
	}
	sweep(t, relay, 1)
	if n := outboxLen(t, e.store); n != 0 {
		t.Errorf("outbox has %d messages after delivery, want 0", n)
	}
	wantDelivered(t, lc, getOrder(t, e.a, o.GetOrderId()), e.clk.Now())
}

// Sweep takes at most Batch messages; several sweeps deliver them all, one bundle each.
func TestRelayBatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	relay := e.newRelay(t, e.store, lc.svc, order.RelayConfig{Batch: 4, Concurrency: 2})
	var os []*orderv1.Order
	for range 10 {
		os = append(os, e.paidOrder(t))
	}
	for _, want := range []int{4, 4, 2, 0} {
		sweep(t, relay, want)
	}
	seen := map[string]bool{}
	for _, o := range os {
		got := getOrder(t, e.a, o.GetOrderId())
		if len(got.GetCertificateIds()) != 3 {
			t.Errorf("order %s has certificates %v, want 3", o.GetOrderId(), got.GetCertificateIds())
		}
		for _, id := range got.GetCertificateIds() {
			if seen[id] {
				t.Errorf("certificate %s delivered to two orders", id)
			}
			seen[id] = true
		}
	}
	list, err := lc.a.ListBundles(context.Background(), &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(list.GetBundles()) != 10 {
		t.Errorf("lifecycle has %d bundles (%v), want 10", len(list.GetBundles()), err)
	}
}

// The order service dies after the lifecycle service created the bundle but before the delivery
// was recorded. After a restart the relay delivers the message again, and the purchase still has
// exactly one bundle.
func TestRelayRedeliversAfterCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	crashing := &creator{next: lc.svc, after: func() { e.db.Close() }}
	o := e.paidOrder(t)
	if _, err := e.newRelay(t, e.store, crashing, order.RelayConfig{}).Sweep(context.Background()); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("Sweep with the database gone = %v, want ErrClosed from recording the delivery", err)
	}

	restarted := e.reopen(t)
	if n := outboxLen(t, restarted); n != 1 {
		t.Fatalf("outbox after restart has %d messages, want the undelivered 1", n)
	}
	again := &creator{next: lc.svc}
	if e.db.Dialect() == db.Postgres {
		// Replicas share the outbox: the dead relay's claim holds for its lease, then the
		// message is due again. (SQLite has one process, which claims nothing.)
		if n, err := e.newRelay(t, restarted, again, order.RelayConfig{}).Sweep(context.Background()); n != 0 || err != nil {
			t.Fatalf("Sweep during the dead relay's lease = %d, %v; want 0, nil", n, err)
		}
		e.clk.Advance(order.DefaultLease)
	}
	sweep(t, e.newRelay(t, restarted, again, order.RelayConfig{}), 1)
	if n := crashing.calls.Load() + again.calls.Load(); n != 2 {
		t.Fatalf("lifecycle called %d times, want 2 (the delivery was repeated)", n)
	}
	if n := outboxLen(t, restarted); n != 0 {
		t.Errorf("outbox has %d messages after redelivery, want 0", n)
	}
	stored, err := restarted.GetOrder(context.Background(), e.accA, o.GetOrderId())
	if err != nil {
		t.Fatal(err)
	}
	delivered := proto.CloneOf(o)
	delivered.CertificateIds = stored.Certificates()
	delivered.BundleDeliveryTime = timestamppb.New(db.FromNullMicros(stored.BundleDeliveryTime))
	wantDelivered(t, lc, delivered, e.clk.Now())
}

// An answer about another bundle is not an acknowledgement: the message stays and is retried.
func TestRelayRefusesAnswerForAnotherBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	relay := e.newRelay(t, e.store, creatorFunc(func(context.Context, *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error) {
		return &lifecyclev1.CreateBundleResponse{Bundle: &lifecyclev1.Bundle{BundleId: "bdl_someone_else"}}, nil
	}), order.RelayConfig{})
	o := e.paidOrder(t)
	sweep(t, relay, 1)
	if m := pending(t, e, e.store); m.Attempts != 1 || !strings.Contains(m.LastError.String, "another bundle") {
		t.Errorf("message after a wrong answer: attempts %d, last error %q", m.Attempts, m.LastError.String)
	}
	if got := getOrder(t, e.a, o.GetOrderId()); len(got.GetCertificateIds()) != 0 || got.GetBundleDeliveryTime() != nil {
		t.Errorf("order marked delivered after a wrong answer: %v", got)
	}
}

// A sweep cut short by shutdown records nothing: the failures are its own cancellation, not the
// lifecycle service's, so the message keeps its attempt count and due time.
func TestRelaySweepCancelled(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	relay := e.newRelay(t, e.store, creatorFunc(func(callCtx context.Context, _ *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error) {
		cancel() // shutdown begins during the call
		<-callCtx.Done()
		return nil, status.FromContextError(callCtx.Err()).Err()
	}), order.RelayConfig{})
	e.paidOrder(t)
	before := pending(t, e, e.store)
	if n, err := relay.Sweep(ctx); n != 1 || err != nil {
		t.Fatalf("Sweep = %d, %v; want 1, nil", n, err)
	}
	if after := pending(t, e, e.store); after != before {
		t.Errorf("message changed by a cancelled sweep: %+v, was %+v", after, before)
	}
}

// Run sleeps on the clock: woken by a payment it delivers at once, and after a failure it waits
// for the retry's due time, then delivers.
func TestRelayRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	c := &creator{next: lc.svc, failures: 1, called: make(chan struct{}, 4)}
	relay := e.newRelay(t, e.store, c, order.RelayConfig{Poll: time.Hour})
	e.wake.relay.Store(relay)
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- relay.Run(ctx) }()
	idle := func() { // Run has swept and is waiting on its timer
		t.Helper()
		if err := e.clk.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	idle()
	o := e.paidOrder(t) // wakes Run through the server's notifier
	<-c.called
	idle()
	if m := pending(t, e, e.store); m.Attempts != 1 {
		t.Fatalf("after the woken sweep: attempts %d, want 1", m.Attempts)
	}
	e.clk.Advance(testBackoff.Base) // the retry is due within Base
	<-c.called
	idle()
	if n := outboxLen(t, e.store); n != 0 {
		t.Errorf("outbox has %d messages after the retry, want 0", n)
	}
	wantDelivered(t, lc, getOrder(t, e.a, o.GetOrderId()), e.clk.Now())
	stop()
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v, want nil on shutdown", err)
	}
}

// When recording a sweep's outcome fails, Run does not retry at once (the messages it could not
// update are still due, so "sleep until the next is due" would be no sleep): it waits a poll
// interval instead of calling the lifecycle service again and again.
func TestRelayRunWaitsAfterFailedSweep(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := e.startLifecycle(t)
	c := &creator{next: lc.svc, called: make(chan struct{}, 4)}
	relay := e.newRelay(t, e.store, c, order.RelayConfig{Poll: time.Minute})
	e.paidOrder(t)
	// The outbox rows can be claimed but not deleted: recording the delivery fails.
	stmts := []string{
		`CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END`,
	}
	if e.db.Dialect() == db.Postgres {
		stmts = []string{
			`CREATE FUNCTION outbox_frozen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk I/O error'; END $$`,
			`CREATE TRIGGER outbox_frozen BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_frozen()`,
		}
	}
	if err := e.db.Write(context.Background(), func(tx *db.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.Exec(stmt); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- relay.Run(ctx) }()
	<-c.called
	waitCtx, cancelWait := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWait()
	if err := e.clk.BlockUntilContext(waitCtx, 1); err != nil {
		t.Fatalf("Run did not wait after a failed sweep (lifecycle called %d times)", c.calls.Load())
	}
	if n := c.calls.Load(); n != 1 {
		t.Errorf("lifecycle called %d times before Run waited, want 1", n)
	}
	stop()
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v", err)
	}
}
