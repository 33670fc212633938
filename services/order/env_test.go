package order_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle"
	lifecyclestore "github.com/certhosting/certhosting/services/lifecycle/store"
	"github.com/certhosting/certhosting/services/order"
	"github.com/certhosting/certhosting/services/order/store"
)

// env is an order server in-process, behind the real interceptor chain, with two customer
// accounts (a and b). Its database lives in dir, so a test can reopen it as a restarted process
// would.
type env struct {
	clk      *clockwork.FakeClock
	identity *auth.Store
	dir      string
	db       *db.DB
	store    *store.Store
	wake     *notifier
	a, b     orderv1.OrderServiceClient
	accA     string
}

// notifier stands where the order server expects its relay: it counts wake-ups and passes them
// on to the relay a test installs.
type notifier struct {
	n     atomic.Int32
	relay atomic.Pointer[order.Relay]
}

func (n *notifier) Notify() {
	n.n.Add(1)
	if r := n.relay.Load(); r != nil {
		r.Notify()
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clockwork.NewFakeClock()
	e := &env{clk: clk, identity: grpctest.OpenIdentity(t, clk), dir: t.TempDir(), wake: &notifier{}}
	e.db = grpctest.OpenDB(t, e.dir, "order.db", store.Migrations())
	e.store = store.New(e.db)
	srv, err := order.NewServer(context.Background(), e.store, clk, grpctest.Logger(t), e.wake)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpctest.Start(t, auth.NewInterceptor(auth.NewVerifier(e.identity, clk, time.Minute), order.Policy, auth.Limits{}),
		func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, srv) })
	a := grpctest.NewCaller(t, e.identity, "a", auth.RoleOwner)
	b := grpctest.NewCaller(t, e.identity, "b", auth.RoleOwner)
	e.a, e.b, e.accA = orderv1.NewOrderServiceClient(gs.Dial(t, a.Key)), orderv1.NewOrderServiceClient(gs.Dial(t, b.Key)), a.AccountID
	return e
}

// reopen opens the order database again, as the order service does after a restart.
func (e *env) reopen(t *testing.T) *store.Store {
	t.Helper()
	return store.New(grpctest.OpenDB(t, e.dir, "order.db", store.Migrations()))
}

// lifecycleService is a real lifecycle service in-process, sharing the env's identity store:
// svc is the order service's client to it (role service), a is customer A's.
type lifecycleService struct {
	svc, a lifecyclev1.LifecycleServiceClient
}

func (e *env) startLifecycle(t *testing.T) lifecycleService {
	t.Helper()
	d := grpctest.OpenDB(t, t.TempDir(), "lifecycle.db", lifecyclestore.Migrations())
	srv := lifecycle.NewServer(lifecycle.Config{Store: lifecyclestore.New(d, nil), Clock: e.clk, Log: grpctest.Logger(t)},
		lifecycle.NewEventHub(), nil)
	gs := grpctest.Start(t, auth.NewInterceptor(auth.NewVerifier(e.identity, e.clk, time.Minute), lifecycle.Policy, auth.Limits{}),
		func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, srv) })
	svc := grpctest.NewCaller(t, e.identity, "certhosting-order", auth.RoleService)
	// A's lifecycle client uses a second key of account A.
	_, keyA, err := e.identity.CreateKey(context.Background(), e.accA, auth.RoleOwner, "lifecycle reader")
	if err != nil {
		t.Fatal(err)
	}
	return lifecycleService{
		svc: lifecyclev1.NewLifecycleServiceClient(gs.Dial(t, svc.Key)),
		a:   lifecyclev1.NewLifecycleServiceClient(gs.Dial(t, keyA)),
	}
}

// testBackoff makes retry times predictable: the first retry is due within 1s, the second
// within 2s.
var testBackoff = backoff.Policy{Base: time.Second, Max: time.Minute}

// newRelay is a relay over st delivering to client, on the env's clock.
func (e *env) newRelay(t *testing.T, st *store.Store, client order.BundleCreator, cfg order.RelayConfig) *order.Relay {
	cfg.Clock, cfg.Backoff, cfg.Log = e.clk, testBackoff, grpctest.Logger(t)
	return order.NewRelay(st, client, cfg)
}

var seq atomic.Int64

// createOrder makes an order for c with a fresh request id; the clock moves a second after each,
// so orders made one after another list newest first.
func (e *env) createOrder(t *testing.T, c orderv1.OrderServiceClient, product string, domains, years int32, hosting bool) *orderv1.Order {
	t.Helper()
	resp, err := c.CreateOrder(context.Background(), &orderv1.CreateOrderRequest{
		RequestId: fmt.Sprintf("req-%d", seq.Add(1)), ProductId: product, DomainCount: domains, SubscriptionYears: years, Hosting: hosting,
	})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	e.clk.Advance(time.Second)
	return resp.GetOrder()
}

// paidOrder makes and pays a 3-year hosted order of A for 3 domains.
func (e *env) paidOrder(t *testing.T) *orderv1.Order {
	t.Helper()
	o := e.createOrder(t, e.a, "dv-multi", 3, 3, true)
	resp, err := e.a.PayOrder(context.Background(), &orderv1.PayOrderRequest{OrderId: o.GetOrderId(), PaymentReference: "pay-" + o.GetOrderId()})
	if err != nil {
		t.Fatalf("PayOrder: %v", err)
	}
	return resp.GetOrder()
}

// outboxLen counts undelivered messages in st.
func outboxLen(t *testing.T, st *store.Store) int {
	t.Helper()
	n, err := st.OutboxLen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
