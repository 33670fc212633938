package lifecycle_test

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/miekg/dns"
	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/metrics"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
	"github.com/certhosting/certhosting/services/order"
	orderstore "github.com/certhosting/certhosting/services/order/store"
)

// start is the fake clock's origin in these tests.
var start = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// envOptions tune newEnv.
type envOptions struct {
	maxValidity time.Duration  // local CA maximum validity (default 200 days)
	dnsTimeout  time.Duration  // local CA DNS timeout (default 1h)
	recheck     time.Duration  // how often the local CA looks for a missing record (default 10s)
	rejectOrg   *regexp.Regexp // legal names the local CA rejects
	// acme routes DV products to an ACME client on a Pebble of the env's own (env.acme, see
	// acme_test.go); the local CA keeps serving the rest. The fake clock then starts at the real
	// now instead of start, because Pebble issues in real time.
	acme bool
	// streamsPerAccount caps each account's open streams (auth.Limits); 0: no cap.
	streamsPerAccount int
	// caRateLimits are the CAs' max issuance rates (lifecycle.Config.CARateLimits).
	caRateLimits map[string]float64
}

// env is the lifecycle service in-process: a real gRPC server (over bufconn) with the real
// interceptors and identity store, a real SQLite store, the real local CA (behind a switch that
// can make it unavailable) verifying through a real DNS server on loopback, and a fake clock that
// the test moves. The ticker is driven by calling Tick. Callers: the order service's credential
// (svc), two customer accounts (a and b), and the support engineer "alice".
type env struct {
	t         *testing.T
	ctx       context.Context
	clk       *clockwork.FakeClock
	db        *db.DB
	zone      *dnsserver.MemorySource
	ca        *flakyCA
	authority *localca.CA
	st        *store.Store
	ticker    *lifecycle.Ticker
	reissuer  *lifecycle.Reissuer // driven by calling Step
	cfg       lifecycle.Config
	identity  *auth.Store
	authn     *auth.Interceptor // the lifecycle server's
	acme      *acmeCA           // with envOptions.acme
	dir       string            // where its databases are (grpctest.OpenDBWith opens them again)
	gs        *grpctest.Server
	metrics   *metrics.Set // the service's metrics (the domain's; the gRPC ones stay zero in-process)

	svc, a, b          lifecyclev1.LifecycleServiceClient
	aSupport, bSupport lifecyclev1.SupportServiceClient
	support            lifecyclev1.SupportServiceClient // the engineer alice
	supportConn        *grpc.ClientConn
	// accA and accB are the customers' account ids; keyA is A's key.
	accA, accB, keyA string
	// webhooksA and webhooksB are A's and B's owners' WebhookService clients; box seals the
	// endpoints' secrets (a notify.Dispatcher of a test opens them with it).
	webhooksA, webhooksB lifecyclev1.WebhookServiceClient
	box                  *secrets.Box
}

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	dir := t.TempDir()
	origin := start
	if o.acme {
		// Pebble dates its certificates by the real clock: the service's clock starts there too.
		origin = time.Now().UTC().Truncate(time.Second)
	}
	clk := clockwork.NewFakeClockAt(origin)
	log := grpctest.Logger(t)

	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })

	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	if o.maxValidity == 0 {
		o.maxValidity = localca.DefaultMaxValidity
	}
	authority, err := localca.Open(ctx, localca.Config{
		DBPath: dbtest.URLIn(t, dbtest.FromEnv(t), dir, "localca.db"), Box: box, Clock: clk, Resolver: dnsSrv.Addr(),
		MaxValidity: o.maxValidity, DNSTimeout: o.dnsTimeout, Recheck: o.recheck,
		OrganizationRule: localca.OrganizationRule{RejectLegalName: o.rejectOrg}, CAAIdentity: "certhosting.test",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authority.Close() })

	database := grpctest.OpenDBWith(t, dir, "lifecycle.db", store.DBOptions())
	events := lifecycle.NewEventHub()
	st := store.New(database, events.Notify)
	flaky := &flakyCA{Client: authority}
	cas := ca.Single("local", flaky)
	var acmeCA *acmeCA
	if o.acme {
		acmeCA = startACME(t, st, clk, box)
		cas = acmeCA.registry(t, flaky)
	}
	metricSet := metrics.New()
	cfg := lifecycle.Config{Store: st, Clock: clk, Log: log, CAs: cas, Keys: box,
		Engineers: []string{"alice", "bob"}, Metrics: lifecycle.NewMetrics(metricSet.Registry), CARateLimits: o.caRateLimits}
	metricSet.Registry.MustRegister(lifecycle.NewStoreCollector(st, clk.Now, log, true))
	ticker := lifecycle.NewTicker(cfg, lifecycle.TickerConfig{})
	reissuer := lifecycle.NewReissuer(cfg, nil)

	identity := grpctest.OpenIdentity(t, clk)
	authn := auth.NewInterceptor(auth.NewVerifier(identity, clk, time.Minute), lifecycle.Policy, auth.Limits{StreamsPerAccount: o.streamsPerAccount})
	gs := grpctest.Start(t, authn,
		func(s *grpc.Server) {
			lifecyclev1.RegisterLifecycleServiceServer(s, lifecycle.NewServer(cfg, events, nil))
			lifecyclev1.RegisterSupportServiceServer(s, lifecycle.NewSupportServer(cfg))
			lifecyclev1.RegisterAccountServiceServer(s, lifecycle.NewAccountServer(cfg, identity))
			lifecyclev1.RegisterOperationsServiceServer(s, lifecycle.NewOperationsServer(cfg, nil))
			lifecyclev1.RegisterWebhookServiceServer(s, lifecycle.NewWebhookServer(cfg, nil))
		})
	svc := grpctest.NewCaller(t, identity, "certhosting-order", auth.RoleService)
	a := grpctest.NewCaller(t, identity, "a", auth.RoleOwner)
	b := grpctest.NewCaller(t, identity, "b", auth.RoleOwner)
	// The support engineer's key carries the engineer's name, as the service's configuration
	// expects: cases are assigned to that name and the engineer's notes are signed with it.
	staffAccount, err := identity.CreateAccount(ctx, "support")
	if err != nil {
		t.Fatal(err)
	}
	_, staffKey, err := identity.CreateKey(ctx, staffAccount.ID, auth.RoleSupport, "alice")
	if err != nil {
		t.Fatal(err)
	}
	aConn, bConn, staffConn := gs.Dial(t, a.Key), gs.Dial(t, b.Key), gs.Dial(t, staffKey)
	return &env{
		t: t, ctx: ctx, clk: clk, db: database, zone: zone, ca: flaky, authority: authority, st: st, ticker: ticker, reissuer: reissuer, cfg: cfg,
		identity: identity, authn: authn, acme: acmeCA, dir: dir, gs: gs, metrics: metricSet,
		svc: lifecyclev1.NewLifecycleServiceClient(gs.Dial(t, svc.Key)),
		a:   lifecyclev1.NewLifecycleServiceClient(aConn), b: lifecyclev1.NewLifecycleServiceClient(bConn),
		aSupport: lifecyclev1.NewSupportServiceClient(aConn), bSupport: lifecyclev1.NewSupportServiceClient(bConn),
		support: lifecyclev1.NewSupportServiceClient(staffConn), supportConn: staffConn,
		accA: a.AccountID, accB: b.AccountID, keyA: a.Key,
		webhooksA: lifecyclev1.NewWebhookServiceClient(aConn), webhooksB: lifecyclev1.NewWebhookServiceClient(bConn), box: box,
	}
}

// in is the env for the subtest t: the same service, with helpers that fail t. Subtests that
// share an env this way run one after another (not in parallel).
func (e *env) in(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// orders is the order service in-process beside the env's lifecycle service: the real server behind
// the real interceptors, on the env's identity store and fake clock, and the real outbox relay
// delivering to the lifecycle service as the order service's own (service-role) caller. Tests
// drive the relay with Sweep, as they drive the ticker with Tick.
type orders struct {
	a     orderv1.OrderServiceClient // customer A
	relay *order.Relay
	gs    *grpctest.Server
}

func (e *env) startOrders() *orders {
	e.t.Helper()
	d := grpctest.OpenDB(e.t, e.t.TempDir(), "order.db", orderstore.Migrations())
	st := orderstore.New(d)
	relay := order.NewRelay(st, e.svc, order.RelayConfig{Clock: e.clk, Log: grpctest.Logger(e.t)})
	srv, err := order.NewServer(e.ctx, st, e.clk, grpctest.Logger(e.t), relay)
	if err != nil {
		e.t.Fatal(err)
	}
	gs := grpctest.Start(e.t, auth.NewInterceptor(auth.NewVerifier(e.identity, e.clk, time.Minute), order.Policy, auth.Limits{}),
		func(s *grpc.Server) { orderv1.RegisterOrderServiceServer(s, srv) })
	return &orders{a: orderv1.NewOrderServiceClient(gs.Dial(e.t, e.keyA)), relay: relay, gs: gs}
}

// purchase buys as customer A through the order service (CreateOrder, PayOrder), lets the relay
// deliver the paid order to the lifecycle service in one sweep, and returns the bundle as A sees
// it, after checking that the order names it and its instances.
func (e *env) purchase(o *orders, product string, domains, years int32, hosting bool) *lifecyclev1.Bundle {
	e.t.Helper()
	created, err := o.a.CreateOrder(e.ctx, &orderv1.CreateOrderRequest{
		RequestId: fmt.Sprintf("req-%d", e.clk.Now().UnixNano()), ProductId: product,
		DomainCount: domains, SubscriptionYears: years, Hosting: hosting,
	})
	if err != nil {
		e.t.Fatalf("CreateOrder(%s, %d domains, %d years, hosting %v): %v", product, domains, years, hosting, err)
	}
	id := created.GetOrder().GetOrderId()
	if _, err := o.a.PayOrder(e.ctx, &orderv1.PayOrderRequest{OrderId: id, PaymentReference: "pay-" + id}); err != nil {
		e.t.Fatalf("PayOrder(%s): %v", id, err)
	}
	if n, err := o.relay.Sweep(e.ctx); err != nil || n != 1 {
		e.t.Fatalf("relay sweep after the payment: %d messages, %v; want 1 delivered", n, err)
	}
	got, err := o.a.GetOrder(e.ctx, &orderv1.GetOrderRequest{OrderId: id})
	if err != nil {
		e.t.Fatalf("GetOrder(%s): %v", id, err)
	}
	if got.GetOrder().GetBundleDeliveryTime() == nil {
		e.t.Fatalf("order %s after the relay's sweep: %v; want its bundle delivered", id, got.GetOrder())
	}
	b := e.bundle(got.GetOrder().GetBundleId())
	if want := got.GetOrder().GetCertificateIds(); !slices.Equal(certIDs(b.GetCertificates()), want) || b.GetOrderId() != id {
		e.t.Fatalf("bundle %s: order %s, instances %v; want order %s with the order's instances %v",
			b.GetBundleId(), b.GetOrderId(), certIDs(b.GetCertificates()), id, want)
	}
	return b
}

// flakyCA is the real CA behind a switch: while down, every call fails as a network error would.
// It also plays a CA with renewal information (RFC 9773) once a test sets a window, and keeps the
// requests it was given.
type flakyCA struct {
	ca.Client
	down  atomic.Bool
	calls atomic.Int64

	mu       sync.Mutex
	windows  map[string]ca.RenewalWindow // by certificate chain; others get no renewal information
	requests []ca.Request
}

// setWindow makes the CA publish w as the renewal window of the certificate with this chain.
func (f *flakyCA) setWindow(chainPEM string, w ca.RenewalWindow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.windows == nil {
		f.windows = map[string]ca.RenewalWindow{}
	}
	f.windows[chainPEM] = w
}

// RenewalInfo implements ca.RenewalInformer.
func (f *flakyCA) RenewalInfo(ctx context.Context, chainPEM []byte) (ca.RenewalWindow, bool, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return ca.RenewalWindow{}, false, errCADown
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.windows[string(chainPEM)]
	return w, ok, nil
}

// Revoke passes the revocation to the wrapped CA (ca.Revoker), unless the CA is down.
func (f *flakyCA) Revoke(ctx context.Context, chainPEM []byte, reason ca.RevocationReason) error {
	f.calls.Add(1)
	if f.down.Load() {
		return errCADown
	}
	return f.Client.(ca.Revoker).Revoke(ctx, chainPEM, reason)
}

// Instructions passes the wrapped CA's on (ca.Instructor).
func (f *flakyCA) Instructions(binding string, domains []string) []ca.DNSRecord {
	return f.Client.(ca.Instructor).Instructions(binding, domains)
}

// VerdictTimeout passes the wrapped CA's on (ca.VerdictTimer).
func (f *flakyCA) VerdictTimeout() time.Duration {
	if vt, ok := f.Client.(ca.VerdictTimer); ok {
		return vt.VerdictTimeout()
	}
	return 0
}

var errCADown = &net.OpError{Op: "dial", Net: "tcp", Err: errString("connection refused")}

type errString string

func (e errString) Error() string { return string(e) }

func (f *flakyCA) Submit(ctx context.Context, r ca.Request) (ca.Submission, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return ca.Submission{}, errCADown
	}
	f.mu.Lock()
	f.requests = append(f.requests, r)
	f.mu.Unlock()
	return f.Client.Submit(ctx, r)
}

func (f *flakyCA) Status(ctx context.Context, ref string) (ca.Status, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return ca.Status{}, errCADown
	}
	return f.Client.Status(ctx, ref)
}

// buy creates a bundle as the order service would after payment.
func (e *env) buy(product string, validation lifecyclev1.ValidationType, domainType lifecyclev1.DomainType, domains, years int32, hosting bool) *lifecyclev1.Bundle {
	e.t.Helper()
	now := e.clk.Now()
	resp, err := e.svc.CreateBundle(e.ctx, &lifecyclev1.CreateBundleRequest{
		BundleId: ids.New(ids.Bundle, now), AccountId: e.accA, OrderId: ids.New(ids.Order, now),
		Product:     &lifecyclev1.ProductSnapshot{ProductId: product, ValidationType: validation, DomainType: domainType},
		DomainCount: domains, SubscriptionYears: years, Hosting: hosting,
	})
	if err != nil {
		e.t.Fatalf("CreateBundle: %v", err)
	}
	return resp.GetBundle()
}

// submit sends an application as customer A and fails the test if it is refused.
func (e *env) submit(req *lifecyclev1.SubmitApplicationRequest) *lifecyclev1.SubmitApplicationResponse {
	e.t.Helper()
	resp, err := e.a.SubmitApplication(e.ctx, req)
	if err != nil {
		e.t.Fatalf("SubmitApplication(%v): %v", req.GetDomains(), err)
	}
	return resp
}

// issue submits req, publishes its records and ticks: the local CA verifies them and issues in
// that tick. It returns the certificate, which must have its certificate by then.
func (e *env) issue(req *lifecyclev1.SubmitApplicationRequest) *lifecyclev1.Certificate {
	e.t.Helper()
	e.publish(e.submit(req).GetInstructions())
	e.tick()
	c := e.certificate(req.GetCertificateId())
	if c.GetCurrentIssuance() == nil {
		e.t.Fatalf("certificate %s is %s after its records were published, want a certificate issued", c.GetCertificateId(), c.GetState())
	}
	return c
}

// publish serves the instructions' records from the test DNS server.
func (e *env) publish(records []*lifecyclev1.DnsRecord) {
	e.t.Helper()
	for _, r := range records {
		rr, err := dns.NewRR(r.GetName() + `. 60 IN ` + r.GetType() + ` "` + r.GetValue() + `"`)
		if err != nil {
			e.t.Fatal(err)
		}
		e.zone.Add(rr)
	}
}

// withhold removes the instructions' records.
func (e *env) withhold(records []*lifecyclev1.DnsRecord) {
	for _, r := range records {
		e.zone.Remove(r.GetName()+".", dns.StringToType[r.GetType()])
	}
}

// tick runs one tick at the fake clock's now.
func (e *env) tick() lifecycle.TickStats {
	e.t.Helper()
	st, err := e.ticker.Tick(e.ctx, e.clk.Now())
	if err != nil {
		e.t.Fatalf("tick at %s: %v", e.clk.Now(), err)
	}
	return st
}

// advance moves the clock forward by d, ticking at every moment work falls due on the way (as
// the real ticker, which sleeps until the next due time, would) and calling observe after each
// tick.
func (e *env) advance(d time.Duration, observe func()) {
	e.t.Helper()
	end := e.clk.Now().Add(d)
	for ticks := 0; ; ticks++ {
		if ticks == 100_000 {
			e.t.Fatalf("advance: 100000 ticks and still at %s of %s; something stays due without progress", e.clk.Now(), end)
		}
		e.tick()
		if observe != nil {
			observe()
		}
		next, ok, err := e.st.NextDue(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		now := e.clk.Now()
		if !ok || next.After(end) {
			e.clk.Advance(end.Sub(now))
			e.tick()
			if observe != nil {
				observe()
			}
			return
		}
		step := next.Sub(now)
		if step < time.Second {
			step = time.Second
		}
		e.clk.Advance(step)
	}
}

func (e *env) bundle(id string) *lifecyclev1.Bundle {
	e.t.Helper()
	resp, err := e.a.GetBundle(e.ctx, &lifecyclev1.GetBundleRequest{BundleId: id})
	if err != nil {
		e.t.Fatalf("GetBundle: %v", err)
	}
	return resp.GetBundle()
}

func (e *env) certificate(id string) *lifecyclev1.Certificate {
	e.t.Helper()
	resp, err := e.a.GetCertificate(e.ctx, &lifecyclev1.GetCertificateRequest{CertificateId: id})
	if err != nil {
		e.t.Fatalf("GetCertificate: %v", err)
	}
	return resp.GetCertificate()
}

func (e *env) history(certID string) []*lifecyclev1.LifecycleEvent {
	e.t.Helper()
	resp, err := e.a.GetCertificateLifecycle(e.ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: certID, PageSize: 500})
	if err != nil {
		e.t.Fatalf("GetCertificateLifecycle: %v", err)
	}
	return resp.GetEvents()
}

func (e *env) cases(c lifecyclev1.SupportServiceClient) []*lifecyclev1.SupportCase {
	e.t.Helper()
	resp, err := c.ListSupportCases(e.ctx, &lifecyclev1.ListSupportCasesRequest{PageSize: 500})
	if err != nil {
		e.t.Fatalf("ListSupportCases: %v", err)
	}
	return resp.GetCases()
}

// days is how far t is from T0, in days, for readable logs.
func days(t0, t time.Time) float64 { return t.Sub(t0).Hours() / 24 }

// request is a valid CreateBundleRequest for a new order of account, with fresh ids. The clock
// moves on a second after each, so bundles made one after another sort newest first by id.
func (e *env) request(account string, years int32, hosting bool) *lifecyclev1.CreateBundleRequest {
	now := e.clk.Now()
	e.clk.Advance(time.Second)
	return &lifecyclev1.CreateBundleRequest{
		BundleId:  ids.New(ids.Bundle, now),
		AccountId: account,
		OrderId:   ids.New(ids.Order, now),
		Product: &lifecyclev1.ProductSnapshot{
			ProductId:      "dv-multi",
			ValidationType: lifecyclev1.ValidationType_VALIDATION_TYPE_DV,
			DomainType:     lifecyclev1.DomainType_DOMAIN_TYPE_MULTI,
		},
		DomainCount:       3,
		SubscriptionYears: years,
		Hosting:           hosting,
	}
}

// create makes a bundle through the service credential.
func (e *env) create(t *testing.T, account string, years int32, hosting bool) *lifecyclev1.Bundle {
	t.Helper()
	resp, err := e.svc.CreateBundle(context.Background(), e.request(account, years, hosting))
	if err != nil {
		t.Fatalf("CreateBundle(%d years, hosting %v): %v", years, hosting, err)
	}
	return resp.GetBundle()
}

// certIDs lists the ids of certificates, in order.
func certIDs(cs []*lifecyclev1.Certificate) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.GetCertificateId())
	}
	return out
}
