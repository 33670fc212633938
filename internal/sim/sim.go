// Package sim is the proof of issue 13, item 8: the lifecycle service's real ticker and real
// stores (SQLite), the real local CA verifying through a real DNS server, a fake clock moved in
// steps across simulated years, and faults — a CA with transient errors and rejections, a total
// CA outage, validation records removed from some bundles — and at the end the counts that must be
// zero: certificates that expired with no successor and without a support case and a notification
// at least escalate_before earlier, and coverage gaps of hosted bundles whose records stayed.
//
// The simulation test (sim_test.go, in make test) runs 1,000 bundles; cmd/certhosting-simbench
// (make bench-sim) runs 10,000. Both print Result.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Config is one simulation; zero values take the defaults of issue 13, item 8.
type Config struct {
	// Dir holds the databases (a test's TempDir).
	Dir string
	// Bundles is how many bundles are bought (default 1,000), in the first PurchaseSpan.
	Bundles int
	// Duration is the simulated time (default 3 years); Step is how far the clock moves between
	// ticks (default 1 hour).
	Duration, Step time.Duration
	// Seed drives every random choice (default: a random seed, printed in Result).
	Seed uint64
	// TransientRate, RejectRate: the CA's share of failed calls (default 5%) and of issuances
	// turned into rejections (default 1%). RecordLossRate: the share of bundles whose validation
	// records are removed at a random time (default 2%). Outage: the total CA outage (default 3 days),
	// starting at a random time in the middle of the run.
	TransientRate, RejectRate, RecordLossRate float64
	Outage                                    time.Duration
	// MaxValidity is the local CA's longest certificate (default 200 days: two or more
	// certificates per subscription year, so renewals happen inside years and across them).
	MaxValidity time.Duration
	// Notifications decides whether a certificate's customer was notified in time (default: the
	// FlakyEndpoint, which counts a webhook once it acknowledged it; with NoWebhook,
	// CommittedEvents: the case-opened or expiry-reminder history event was committed).
	Notifications Notifications
	// NoWebhook runs without the webhook endpoint that fails half of its deliveries.
	NoWebhook bool
	// OnStart, if set, is called once the service is up and before the first purchase, with the
	// simulation's environment: where a webhook endpoint that fails half of its deliveries is
	// registered once the webhook pipeline exists (and its delivery worker driven from OnStep).
	OnStart func(ctx context.Context, env *Env) error
	// OnStep, if set, is called after each tick at the clock's now.
	OnStep func(ctx context.Context, env *Env, now time.Time) error
	// Log receives the service's logs (default: discarded).
	Log *slog.Logger
}

// Notifications tells whether a certificate's customer had been notified by a time.
type Notifications interface {
	// NotifiedBy reports whether a notification about the certificate (or its bundle's renewal)
	// reached the customer at or before by and after from (the certificate's issuance).
	NotifiedBy(ctx context.Context, bundleID, certificateID string, from, by time.Time) (bool, error)
}

// Env is the running simulation: what OnStart and OnStep may use.
type Env struct {
	Clock  *clockwork.FakeClock
	DB     *db.DB
	Store  *store.Store
	Server *lifecycle.Server
	Ticker *lifecycle.Ticker
	CA     *FaultyCA
	// Service is a context carrying the order service's principal; Owner one of the customer
	// account's owner.
	Service, Owner context.Context
	AccountID      string
}

// CommittedEvents counts a notification as sent once its history event is committed: a
// support_case_opened or expiry_reminder event of the bundle. It reads them all at its first call
// (the run is over by then), one query instead of one per expiry.
type CommittedEvents struct {
	DB *db.DB

	once  sync.Once
	err   error
	times map[string][]int64 // by bundle
}

// NotifiedBy implements Notifications.
func (c *CommittedEvents) NotifiedBy(ctx context.Context, bundleID, certificateID string, from, by time.Time) (bool, error) {
	c.once.Do(func() {
		var rows []struct {
			BundleID string `db:"bundle_id"`
			Time     int64  `db:"time"`
		}
		c.err = c.DB.Select(ctx, &rows, `SELECT bundle_id, time FROM events WHERE type IN (?, ?)`,
			store.EventSupportCaseOpened, store.EventExpiryReminder)
		c.times = map[string][]int64{}
		for _, r := range rows {
			c.times[r.BundleID] = append(c.times[r.BundleID], r.Time)
		}
	})
	if c.err != nil {
		return false, c.err
	}
	for _, t := range c.times[bundleID] {
		if t >= db.Micros(from) && t <= db.Micros(by) {
			return true, nil
		}
	}
	return false, nil
}

// Result is what a simulation found.
type Result struct {
	Seed                      uint64
	Bundles, Hosted           int
	SimulatedDays             int
	Ticks                     int
	Wall                      time.Duration
	OutageStart               time.Time
	Outage                    time.Duration
	RecordsRemoved            int // bundles whose validation records were removed
	Issuances, Renewals       int // renewals: issuances after each bundle's first
	Cases, Reminders          int // support cases opened, expiry_reminder events
	CAErrors, CARejections    int // injected transient and outage errors; injected rejections
	CAOutageErrors, CACalls   int
	WebhookRequests           int // delivery attempts to the flaky endpoint
	WebhookFailed             int // ... that it failed (every other one)
	Expiries                  int // certificates that expired with no successor in place
	ExpiriesAtSubscriptionEnd int // ... at the end of their subscription (expected)
	ExpiriesRecordsRemoved    int // ... of bundles whose records were removed
	// The proof: both must be zero.
	SilentExpiries int // expired with no successor and without (a case, for hosted, and) a notification escalate_before earlier
	CoverageGaps   int // hosted bundles whose records stayed with any uncovered time
	GapTime        time.Duration
	// Silent describes the first silent expiries, for the failure message.
	Silent []string
}

// Print writes the result in the form the README quotes.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "simulation: seed %d, %d bundles (%d hosted), %d simulated days in %d ticks, %s wall\n",
		r.Seed, r.Bundles, r.Hosted, r.SimulatedDays, r.Ticks, r.Wall.Round(time.Second))
	fmt.Fprintf(w, "  faults: CA calls %d, errors %d (%d transient, %d in the %s outage from %s), rejections %d, records removed from %d bundles\n",
		r.CACalls, r.CAErrors, r.CAErrors-r.CAOutageErrors, r.CAOutageErrors, r.Outage, r.OutageStart.Format("2006-01-02 15:04"),
		r.CARejections, r.RecordsRemoved)
	fmt.Fprintf(w, "  totals: issuances %d, renewals %d, support cases %d, expiry reminders %d\n",
		r.Issuances, r.Renewals, r.Cases, r.Reminders)
	fmt.Fprintf(w, "  webhook endpoint failing half of its deliveries: %d attempts, %d failed, %d acknowledged\n",
		r.WebhookRequests, r.WebhookFailed, r.WebhookRequests-r.WebhookFailed)
	fmt.Fprintf(w, "  expiries with no successor: %d (%d at the end of the subscription, %d of bundles whose records were removed)\n",
		r.Expiries, r.ExpiriesAtSubscriptionEnd, r.ExpiriesRecordsRemoved)
	fmt.Fprintf(w, "  silent expiries (no case and notification escalate_before earlier): %d\n", r.SilentExpiries)
	fmt.Fprintf(w, "  coverage gaps of hosted bundles whose records stayed: %d (%s uncovered)\n", r.CoverageGaps, r.GapTime)
	for _, s := range r.Silent {
		fmt.Fprintf(w, "  silent: %s\n", s)
	}
}

// start is the simulated purchase day of the first bundle.
var start = time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)

// purchaseSpan is the time over which the bundles are bought, evenly: renewals spread over the
// year too, so that the outage, wherever it falls, meets renewals due.
const purchaseSpan = lifecycle.Year

// bundlePlan is one simulated customer's bundle.
type bundlePlan struct {
	at            time.Time // bought
	years         int32
	hosting       bool
	removeRecords time.Time // zero: the records stay
	id, certID    string
	records       []*lifecyclev1.DnsRecord
}

func (c *Config) defaults() {
	if c.Bundles == 0 {
		c.Bundles = 1000
	}
	if c.Duration == 0 {
		c.Duration = 3 * lifecycle.Year
	}
	if c.Step == 0 {
		c.Step = time.Hour
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	if c.TransientRate == 0 {
		c.TransientRate = 0.05
	}
	if c.RejectRate == 0 {
		c.RejectRate = 0.01
	}
	if c.RecordLossRate == 0 {
		c.RecordLossRate = 0.02
	}
	if c.Outage == 0 {
		c.Outage = 3 * 24 * time.Hour
	}
	if c.MaxValidity == 0 {
		c.MaxValidity = 200 * 24 * time.Hour
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Run runs the simulation.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	wall := time.Now()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))
	res := Result{Seed: cfg.Seed, Bundles: cfg.Bundles}
	end := start.Add(cfg.Duration)

	clk := clockwork.NewFakeClockAt(start)
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		return res, err
	}
	defer dnsSrv.Close()
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		return res, err
	}
	authority, err := localca.Open(ctx, localca.Config{DBPath: filepath.Join(cfg.Dir, "localca.db"), Box: box, Clock: clk,
		Resolver: dnsSrv.Addr(), MaxValidity: cfg.MaxValidity, CAAIdentity: "certhosting.test"})
	if err != nil {
		return res, err
	}
	defer authority.Close()
	database, err := db.Open(ctx, filepath.Join(cfg.Dir, "lifecycle.db"), store.DBOptions())
	if err != nil {
		return res, err
	}
	defer database.Close()
	st := store.New(database, nil)

	// The outage falls somewhere in the middle of the run.
	faulty := NewFaultyCA(authority, clk, rng.Uint64())
	faulty.TransientRate, faulty.RejectRate = cfg.TransientRate, cfg.RejectRate
	faulty.OutageStart = start.Add(cfg.Duration/4 + time.Duration(rng.Int64N(int64(cfg.Duration/2))))
	faulty.OutageEnd = faulty.OutageStart.Add(cfg.Outage)
	res.OutageStart, res.Outage = faulty.OutageStart, cfg.Outage

	lc := lifecycle.Config{Store: st, Clock: clk, Log: cfg.Log, CAs: ca.Single("local", faulty), Keys: box, Engineers: []string{"alice", "bob"}}
	account := ids.New(ids.Account, start)
	env := &Env{
		Clock: clk, DB: database, Store: st, Server: lifecycle.NewServer(lc, lifecycle.NewEventHub(), nil),
		Ticker: lifecycle.NewTicker(lc, lifecycle.TickerConfig{}), CA: faulty, AccountID: account,
		Service: auth.WithCaller(ctx, auth.Principal{AccountID: "acc_service", Role: auth.RoleService, Name: "certhosting-order"}),
		Owner:   auth.WithCaller(ctx, auth.Principal{AccountID: account, Role: auth.RoleOwner, Name: "sim"}),
	}
	var hook *FlakyEndpoint
	if !cfg.NoWebhook {
		if hook, err = startFlakyEndpoint(ctx, lc, env.Owner, st, box, clk, cfg.Log); err != nil {
			return res, fmt.Errorf("webhook endpoint: %w", err)
		}
		defer hook.Close()
		if cfg.Notifications == nil {
			cfg.Notifications = hook
		}
	}
	if cfg.Notifications == nil {
		cfg.Notifications = &CommittedEvents{DB: database}
	}
	if cfg.OnStart != nil {
		if err := cfg.OnStart(ctx, env); err != nil {
			return res, err
		}
	}

	// The customers: 1, 2 or 3-year subscriptions without hosting, 2 or 3 years with.
	plans := make([]*bundlePlan, cfg.Bundles)
	for i := range plans {
		// (span / n) · i: i · span overflows a Duration past 292 bundles.
		p := &bundlePlan{at: start.Add(purchaseSpan / time.Duration(cfg.Bundles) * time.Duration(i)), hosting: rng.IntN(2) == 0}
		if p.hosting {
			p.years = 2 + rng.Int32N(2)
			res.Hosted++
		} else {
			p.years = 1 + rng.Int32N(3)
		}
		if rng.Float64() < cfg.RecordLossRate {
			p.removeRecords = p.at.Add(time.Duration(rng.Int64N(int64(end.Sub(p.at)))))
			res.RecordsRemoved++
		}
		plans[i] = p
	}
	removals := slices.Clone(plans)
	slices.SortFunc(removals, func(a, b *bundlePlan) int { return a.removeRecords.Compare(b.removeRecords) })
	for len(removals) > 0 && removals[0].removeRecords.IsZero() {
		removals = removals[1:]
	}

	next := 0
	for now := start; !now.After(end); now = now.Add(cfg.Step) {
		clk.Advance(now.Sub(clk.Now()))
		for ; next < len(plans) && !plans[next].at.After(now); next++ {
			err := env.buy(plans[next], next, zone)
			if errors.Is(err, errTryLater) {
				break // this customer, and those after, at the next step
			}
			if err != nil {
				return res, fmt.Errorf("bundle %d: %w", next, err)
			}
		}
		for len(removals) > 0 && !removals[0].removeRecords.After(now) {
			for _, r := range removals[0].records {
				zone.Remove(r.GetName()+".", dns.StringToType[r.GetType()])
			}
			removals = removals[1:]
		}
		if _, err := env.Ticker.Tick(ctx, now); err != nil {
			return res, fmt.Errorf("tick at %s: %w", now, err)
		}
		res.Ticks++
		if hook != nil {
			if err := hook.deliver(ctx); err != nil {
				return res, fmt.Errorf("webhook deliveries at %s: %w", now, err)
			}
		}
		if cfg.OnStep != nil {
			if err := cfg.OnStep(ctx, env, now); err != nil {
				return res, err
			}
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
	}
	res.SimulatedDays = int(cfg.Duration / (24 * time.Hour))
	res.CAErrors, res.CAOutageErrors = int(faulty.Transient.Load()+faulty.Outage.Load()), int(faulty.Outage.Load())
	res.CARejections, res.CACalls = int(faulty.Rejected.Load()), int(faulty.Calls.Load())
	lost := map[string]bool{}
	for _, p := range plans {
		if !p.removeRecords.IsZero() {
			lost[p.id] = true
		}
	}
	if hook != nil {
		res.WebhookRequests, res.WebhookFailed = int(hook.requests.Load()), int(hook.failed.Load())
	}
	if err := check(ctx, database, cfg.Notifications, end, lost, &res); err != nil {
		return res, err
	}
	res.Wall = time.Since(wall)
	return res, nil
}

// buy is one customer's purchase: the bundle (as the order service creates it after payment),
// and the application for its first certificate with its records published at once.
func (e *Env) buy(p *bundlePlan, i int, zone *dnsserver.MemorySource) error {
	if p.id != "" {
		return e.apply(p, i, zone)
	}
	now := e.Clock.Now()
	resp, err := e.Server.CreateBundle(e.Service, &lifecyclev1.CreateBundleRequest{
		BundleId: ids.New(ids.Bundle, now), AccountId: e.AccountID, OrderId: ids.New(ids.Order, now),
		Product: &lifecyclev1.ProductSnapshot{ProductId: "dv-single", ValidationType: lifecyclev1.ValidationType_VALIDATION_TYPE_DV,
			DomainType: lifecyclev1.DomainType_DOMAIN_TYPE_SINGLE},
		DomainCount: 1, SubscriptionYears: p.years, Hosting: p.hosting,
	})
	if err != nil {
		return err
	}
	p.id, p.certID = resp.GetBundle().GetBundleId(), resp.GetBundle().GetCertificates()[0].GetCertificateId()
	return e.apply(p, i, zone)
}

// errTryLater is a purchase whose application is to be sent again at the next step.
var errTryLater = errors.New("sim: the CA is unavailable; the customer applies again later")

// apply sends the application for the bundle's first certificate and publishes its records.
func (e *Env) apply(p *bundlePlan, i int, zone *dnsserver.MemorySource) error {
	// A customer whose application meets the CA down (Unavailable: nothing was submitted) tries
	// again at the next step, as the API says to.
	app, err := e.Server.SubmitApplication(e.Owner, &lifecyclev1.SubmitApplicationRequest{
		CertificateId: p.certID, Domains: []string{fmt.Sprintf("shop%d.sim.example", i)},
		Contact: &lifecyclev1.Contact{Name: "Ops", Email: "ops@example.com"},
	})
	if status.Code(err) == codes.Unavailable {
		return errTryLater
	}
	if err != nil {
		return err
	}
	p.records = app.GetInstructions()
	for _, r := range p.records {
		rr, err := dns.NewRR(r.GetName() + `. 60 IN ` + r.GetType() + ` "` + r.GetValue() + `"`)
		if err != nil {
			return err
		}
		zone.Add(rr)
	}
	return nil
}
