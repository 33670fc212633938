package lifecycle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// TickerConfig tunes the renewal ticker; zero values take the defaults.
type TickerConfig struct {
	// Interval is the longest the ticker sleeps between ticks (default 1m). It wakes earlier
	// when the next scheduled work is due sooner, or when an application is submitted.
	Interval time.Duration
	// Batch is how many rows each sweep reads at a time (default 1000).
	Batch int
	// Concurrency bounds the items each sweep has in flight: their transactions, and their calls
	// to a CA that runs in this process (ca.InProcess: the local CA), whose only cost is this
	// process's CPU (default 256). The items' writes are group-committed together, so the more
	// are in flight the fewer commits, and the less of the writer's time, each renewal costs:
	// 256 measured about 1.4 times the completed renewals/s of 32, the default before
	// (docs/performance.md, "Completed renewals"). Calls to any other CA are bounded by CACalls.
	Concurrency int
	// CACalls bounds the calls the ticker has in flight to each CA outside this process (ACME,
	// plug-ins) (default 32, the sweeps' concurrency before Concurrency grew: such a CA sees no
	// more calls at once than it did, whatever Concurrency is).
	CACalls int
	// Backoff spaces out retries of transient CA errors (default 5s doubling to 1h).
	Backoff backoff.Policy
	// Lease is how long a sweep holds the rows it claimed (default DefaultLease): replicas of the
	// service on one database pass them by meanwhile, and take over a dead replica's claims when
	// it ends.
	Lease time.Duration
	// DeployDeadline is how long after its issuance a bundle's current certificate may take to
	// reach every deployment target the bundle expects (default DefaultDeployDeadline); past it
	// the ticker reports the deployment as overdue (deployments.go).
	DeployDeadline time.Duration
	// PhaseDone, if set, is called after each of a tick's sweeps with its name and how long it
	// took (the sweep command reports each sweep's time and CPU for the renewal benchmark).
	PhaseDone func(name string, took time.Duration)
}

// DefaultLease is the ticker's default claim lease.
const DefaultLease = 30 * time.Second

// Ticker is the renewal loop: a thin Run around Tick(ctx, now), which does everything due at
// now. Each sweep reads only rows due at now (partial indexes on the sweep columns), so a tick's
// cost grows with the work due, not with the certificates stored.
//
// Any number of replicas of the service may run a ticker on one (PostgreSQL) database: each sweep
// claims the rows it works on for TickerConfig.Lease (store.ClaimCertificates,
// store.ClaimApplications), so two replicas never renew, submit, poll, expire or escalate the same
// certificate at once, and a replica that dies mid-work leaves its rows to the others when the
// lease ends. The claims spread the work; the compare-and-set writes below keep it correct even
// when a claim outlives its lease (a paused replica).
//
// Every unit of work is one transaction that re-checks what it read (compare-and-set), and every
// CA call is idempotent or harmless to repeat, so a crash at any point leaves state from which the
// next tick finishes the job; the renewal_application_id compare-and-set on the bundle means no
// bundle ever gets two successors.
type Ticker struct {
	core
	cfg     TickerConfig
	wake    chan struct{}
	caSlots caSlots
}

// NewTicker makes the ticker.
func NewTicker(c Config, cfg TickerConfig) *Ticker {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.CACalls <= 0 {
		cfg.CACalls = 32
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Base: 5 * time.Second, Max: time.Hour}
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.DeployDeadline <= 0 {
		cfg.DeployDeadline = DefaultDeployDeadline
	}
	return &Ticker{core: core{c}, cfg: cfg, wake: make(chan struct{}, 1),
		caSlots: caSlots{size: cfg.CACalls, slots: map[string]chan struct{}{}}}
}

// caSlots bounds the ticker's calls in flight to each CA outside the process (TickerConfig.CACalls).
type caSlots struct {
	size  int
	mu    sync.Mutex
	slots map[string]chan struct{} // by CA name
}

// acquire waits for a slot for a call to CA name (client) and returns its release; a CA in the
// process (ca.InProcess) needs none. An error means ctx ended first: no call was made.
func (l *caSlots) acquire(ctx context.Context, name string, client ca.Client) (release func(), err error) {
	if _, ok := client.(ca.InProcess); ok {
		return func() {}, nil
	}
	l.mu.Lock()
	slot, ok := l.slots[name]
	if !ok {
		slot = make(chan struct{}, l.size)
		l.slots[name] = slot
	}
	l.mu.Unlock()
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Wake makes the ticker tick now (an application was submitted). It never blocks.
func (t *Ticker) Wake() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Run ticks until ctx ends.
func (t *Ticker) Run(ctx context.Context) error {
	for {
		if _, err := t.Tick(ctx, t.Clock.Now()); err != nil && ctx.Err() == nil {
			t.Log.Error("tick failed", "err", err)
		}
		wait := t.cfg.Interval
		if next, ok, err := t.Store.NextDue(ctx); err == nil && ok {
			// Work that is due but still here after a tick is another replica's claim (or failed
			// and waits out its lease): look again shortly rather than at once.
			wait = min(wait, max(busyWait, next.Sub(t.Clock.Now())))
		}
		timer := t.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-t.wake:
		case <-timer.Chan():
		}
		timer.Stop()
	}
}

// busyWait is the ticker's shortest pause between ticks.
const busyWait = 100 * time.Millisecond

// TickStats counts what one tick did.
type TickStats struct {
	Expired, Escalated, RenewalInfo, Retried, RenewalsStarted, Activated, HostingEnding int
	Submitted, SubmitErrors, Polled, Issued, Rejected, PollErrors                       int
	// DeploymentsOverdue counts certificates reported as not deployed in time.
	DeploymentsOverdue int
	Reminders          int
}

// PhaseReport is what the sweep command (certhosting-lifecycle sweep) reports, as JSON, of one of
// a tick's sweeps, from TickerConfig.PhaseDone: its name and time, the process's CPU time
// meanwhile, and the database writers' share (db.WriterTotals: the wall time they spent running
// transaction groups, the groups and the writes in them). The renewal benchmark prints it.
type PhaseReport struct {
	Name         string  `json:"name"`
	MS           float64 `json:"ms"`
	CPUMS        float64 `json:"cpu_ms"`
	WriterBusyMS float64 `json:"writer_busy_ms"`
	Groups       int64   `json:"groups"`
	Writes       int64   `json:"writes"`
}

// Tick does everything due at now: expiries, escalations, renewal windows to refresh, rejected
// renewals to retry, renewals to start, applications to submit, applications to poll, expiry
// reminders, in that order (so a renewal started now is submitted, and with a
// quick CA issued, in the same tick).
func (t *Ticker) Tick(ctx context.Context, now time.Time) (st TickStats, err error) {
	start := time.Now()
	defer func() { t.Metrics.sweep(start, now, err) }()
	var errs []error
	for _, phase := range []struct {
		name string
		run  func(context.Context, time.Time, *TickStats) error
	}{
		{"expire", t.expire}, {"escalate", t.escalate}, {"renewal_info", t.renewalInfo}, {"retry", t.retryRenewals},
		{"renew", t.startRenewals}, {"submit", t.submit}, {"poll", t.poll}, {"deployments", t.checkDeployments},
		// Reminders come last: a successor issued in this tick makes its predecessor's reminder moot.
		{"remind", t.remind},
	} {
		began := time.Now()
		if err := phase.run(ctx, now, &st); err != nil {
			errs = append(errs, err)
		}
		if t.cfg.PhaseDone != nil {
			t.cfg.PhaseDone(phase.name, time.Since(began))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return st, errors.Join(errs...)
}

// sweep runs work for every item that load returns, batch by batch, each item in its own
// goroutine and transaction (concurrent writes are group-committed together). It stops when a
// batch comes back short, or when a whole batch failed (the failures are logged and stay due).
func sweep[T any](ctx context.Context, t *Ticker, name string, load func() ([]T, error), work func(T) error) error {
	for round := 0; ; round++ {
		items, err := load()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if len(items) == 0 {
			return nil
		}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			failed int
			sem    = make(chan struct{}, t.cfg.Concurrency)
		)
		for _, it := range items {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := work(it); err != nil {
					if ctx.Err() == nil {
						t.Log.Error("ticker work failed", "sweep", name, "err", err)
					}
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(items) < t.cfg.Batch || failed == len(items) || ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// write runs one unit of the ticker's work in a transaction at now.
func (t *Ticker) write(ctx context.Context, now time.Time, fn func(tx *store.Tx) error) error {
	return t.Store.Write(context.WithoutCancel(ctx), db.Micros(now), fn)
}

// expire moves instances whose certificate passed its not_after to EXPIRED, and ends a bundle's
// hosting when its last hosted certificate expires.
func (t *Ticker) expire(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "expire", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepExpire, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		return t.write(ctx, now, func(tx *store.Tx) error {
			cur, err := tx.Certificate(c.ID)
			if err != nil || !cur.ExpireAt.Valid || cur.ExpireAt.Int64 > db.Micros(now) {
				return err // changed since it was read: nothing to do
			}
			wasHosted := cur.State == state.Hosted
			cur.ExpireAt, cur.RemindAt = sql.NullInt64{}, sql.NullInt64{}
			if cur.State == state.Hosted || cur.State == state.Issued {
				cur.RenewAt, cur.EscalateAt, cur.ARICheckAt = sql.NullInt64{}, sql.NullInt64{}, sql.NullInt64{}
				if err := tx.Transition(&cur, state.Expired, state.ActorTicker, store.EventExpired,
					fmt.Sprintf("certificate expired at %s", db.FromMicros(c.ExpireAt.Int64).Format(time.RFC3339))); err != nil {
					return err
				}
				mu.Lock()
				st.Expired++
				mu.Unlock()
			}
			if err := tx.SaveSchedule(&cur); err != nil {
				return err
			}
			b, err := tx.Bundle(cur.BundleID)
			if err != nil {
				return err
			}
			if err := tx.RefreshCurrent(&b); err != nil {
				return err
			}
			lapsed := wasHosted && !b.CurrentIssuanceID.Valid && b.HostingStatus == store.HostingActive
			ended := wasHosted && b.HostingStatus == store.HostingEnding
			switch {
			case ended:
				b.HostingStatus = store.HostingEnded
			case lapsed:
				// The hosted certificate expired and no successor is in place: coverage has lapsed
				// (the renewal failed or is late, and its case is open and urgent since the
				// escalation). Hosting goes on; the successor's issuance makes it ACTIVE again.
				b.HostingStatus = store.HostingLapsed
			}
			if err := tx.SaveBundle(&b, nil); err != nil {
				return err
			}
			switch {
			case ended:
				return tx.Event(store.Event{AccountID: cur.AccountID, BundleID: cur.BundleID, CertificateID: cur.ID,
					Type: store.EventHostingEnded, From: cur.State, To: cur.State, Actor: state.ActorTicker,
					Reason: "the subscription's last certificate expired; hosting ended"})
			case lapsed:
				return tx.Event(store.Event{AccountID: cur.AccountID, BundleID: cur.BundleID, CertificateID: cur.ID,
					Type: store.EventCoverageLapsed, From: cur.State, To: cur.State, Actor: state.ActorTicker,
					Reason: "the certificate in use expired before its successor was issued; coverage lapsed"})
			}
			return nil
		})
	})
}

// escalate opens an urgent support case for each hosted certificate whose successor is still not
// in place escalate_before its expiry.
func (t *Ticker) escalate(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "escalate", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepEscalate, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		return t.write(ctx, now, func(tx *store.Tx) error {
			cur, err := tx.Certificate(c.ID)
			if err != nil || !cur.EscalateAt.Valid || cur.EscalateAt.Int64 > db.Micros(now) {
				return err
			}
			cur.EscalateAt = sql.NullInt64{}
			if err := tx.SaveSchedule(&cur); err != nil {
				return err
			}
			b, err := tx.Bundle(cur.BundleID)
			if err != nil || b.HostingStatus == store.HostingEnding || b.HostingStatus == store.HostingEnded {
				return err
			}
			expiry := "its expiry"
			if cur.CurrentIssuanceID.Valid {
				if iss, err := tx.Issuance(cur.CurrentIssuanceID.String); err == nil {
					expiry = db.FromMicros(iss.NotAfter).Format(time.RFC3339)
				}
			}
			summary := fmt.Sprintf("the renewal of instance %d is not complete and its certificate expires at %s", cur.Sequence, expiry)
			// One incident, one case (incidents.go): when the renewal's verification already failed,
			// the engineer on that case is told the deadline instead of a second engineer getting a
			// second case.
			opened, err := t.reportIncident(tx, b, report{cert: cur, kind: store.CaseLateRenewal, urgent: true, summary: summary})
			if err != nil || !opened {
				return err
			}
			mu.Lock()
			st.Escalated++
			mu.Unlock()
			return nil
		})
	})
}

// renewalInfo asks the issuing CA for the renewal window of hosted certificates (ACME Renewal
// Information, RFC 9773) and moves their renewal time into it (PlanRenewalInfo).
func (t *Ticker) renewalInfo(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "renewal-info", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepRenewalInfo, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		plan, err := t.planRenewal(ctx, c, now)
		if err != nil {
			return err
		}
		err = t.write(ctx, now, func(tx *store.Tx) error {
			cur, err := tx.Certificate(c.ID)
			if err != nil || cur.CurrentIssuanceID != c.CurrentIssuanceID || cur.RenewAt != c.RenewAt || cur.ARICheckAt != c.ARICheckAt {
				return err // changed since it was read: the next check sees the new state
			}
			cur.ARICheckAt = db.NullMicros(plan.NextCheck)
			if plan.RenewAt.IsZero() || !cur.RenewAt.Valid {
				return tx.SaveSchedule(&cur)
			}
			if c.RenewAt.Int64 != db.Micros(plan.RenewAt) {
				t.Log.Info("renewal moved into the CA's window", "certificate_id", cur.ID,
					"from", db.FromMicros(c.RenewAt.Int64), "to", plan.RenewAt)
			}
			cur.RenewAt = sql.NullInt64{Int64: db.Micros(plan.RenewAt), Valid: true}
			if cur.ExpireAt.Valid {
				// Escalation follows the renewal: half of what is left after it, at most 7 days.
				na, lifetime := db.FromMicros(cur.ExpireAt.Int64), time.Duration(0)
				if iss, err := tx.Issuance(cur.CurrentIssuanceID.String); err == nil {
					lifetime = na.Sub(db.FromMicros(iss.NotBefore))
				}
				cur.EscalateAt = sql.NullInt64{Int64: db.Micros(na.Add(-EscalateBefore(lifetime, na.Sub(plan.RenewAt)))), Valid: true}
			}
			return tx.SaveSchedule(&cur)
		})
		if err == nil {
			mu.Lock()
			st.RenewalInfo++
			mu.Unlock()
		}
		return err
	})
}

// planRenewal asks the certificate's CA for its window. A CA that offers none, or a certificate
// no longer hosted or already renewing, gets a plan that stops the checks; a transient error
// checks again later.
func (t *Ticker) planRenewal(ctx context.Context, c store.Certificate, now time.Time) (RenewalInfoPlan, error) {
	stop := RenewalInfoPlan{}
	if c.State != state.Hosted || !c.RenewAt.Valid || !c.CurrentIssuanceID.Valid {
		return stop, nil
	}
	iss, err := t.Store.Issuance(ctx, c.AccountID, c.CurrentIssuanceID.String)
	if err != nil {
		return stop, err
	}
	a, err := t.Store.ApplicationOf(ctx, c.AccountID, iss.ApplicationID)
	if err != nil {
		return stop, err
	}
	client, err := t.caOf(a)
	if err != nil {
		return stop, err
	}
	informer, ok := client.(ca.RenewalInformer)
	if !ok {
		return stop, nil
	}
	release, err := t.caSlots.acquire(ctx, a.CAName, client)
	if err != nil {
		return stop, err
	}
	cctx, cancel := context.WithTimeout(ctx, caCallTimeout)
	w, ok, err := informer.RenewalInfo(cctx, []byte(iss.ChainPEM))
	cancel()
	release()
	if err != nil {
		t.Log.Warn("renewal information unavailable; asking again later", "certificate_id", c.ID, "err", err)
		return RenewalInfoPlan{NextCheck: now.Add(max(time.Hour, ca.RetryAfter(err)))}, nil
	}
	if !ok {
		return stop, nil
	}
	return PlanRenewalInfo(w, db.FromMicros(iss.NotBefore), db.FromMicros(iss.NotAfter), db.FromMicros(c.RenewAt.Int64),
		now, rand.Int64N), nil
}

// startRenewals decides, for each hosted certificate at its renewal time, where its successor
// goes (DecideSuccessor) and records it: an automatic application for the same instance or for
// the next one (activating it), or the end of hosting. The application is submitted to the CA by
// the submit sweep, outside this transaction.
func (t *Ticker) startRenewals(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "renew", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepRenew, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		var kind SuccessorKind
		ctx, span := tracing.Tracer().Start(ctx, "renewal.start", trace.WithAttributes(
			attribute.String("certhosting.certificate_id", c.ID), attribute.String("certhosting.bundle_id", c.BundleID)))
		defer span.End()
		err := t.write(ctx, now, func(tx *store.Tx) error {
			var err error
			kind, err = t.startRenewal(tx, c.ID, now, tracing.Inject(ctx))
			return err
		})
		if err == nil && kind != 0 {
			mu.Lock()
			switch kind {
			case Reissue:
				st.RenewalsStarted++
			case Activate:
				st.RenewalsStarted++
				st.Activated++
			case HostingEnds:
				st.HostingEnding++
			}
			mu.Unlock()
		}
		return err
	})
}

func (t *Ticker) startRenewal(tx *store.Tx, certID string, now time.Time, traceContext string) (SuccessorKind, error) {
	cur, err := tx.Certificate(certID)
	if err != nil {
		return 0, err
	}
	if !cur.RenewAt.Valid || cur.RenewAt.Int64 > db.Micros(now) {
		return 0, nil // started by someone else, or rescheduled, since it was read
	}
	b, err := tx.Bundle(cur.BundleID)
	if err != nil {
		return 0, err
	}
	renewable := cur.State == state.Hosted && cur.CurrentIssuanceID.Valid && b.T0.Valid && !b.RenewalApplicationID.Valid
	if renewable {
		// Outside the bundle's maintenance window the renewal waits for the next one: the renewal
		// time moves there (the escalation stays), and this sweep runs again then.
		if at := t.renewalStart(b, cur, now); at.After(now) {
			t.Log.Info("renewal waits for the maintenance window", "certificate_id", cur.ID, "bundle_id", b.ID, "until", at)
			cur.RenewAt = sql.NullInt64{Int64: db.Micros(at), Valid: true}
			return 0, tx.SaveSchedule(&cur)
		}
	}
	cur.RenewAt, cur.ARICheckAt = sql.NullInt64{}, sql.NullInt64{}
	if err := tx.SaveSchedule(&cur); err != nil {
		return 0, err
	}
	if !renewable {
		return 0, nil // not (or no longer) the hosted certificate, or a successor is already in flight
	}
	iss, err := tx.Issuance(cur.CurrentIssuanceID.String)
	if err != nil {
		return 0, err
	}
	t0, notAfter := db.FromMicros(b.T0.Int64), db.FromMicros(iss.NotAfter)
	next := DecideSuccessor(t0, b.SubscriptionYears, cur.Sequence, notAfter, now)
	reason := fmt.Sprintf("renewal of the certificate expiring at %s: successor in instance %d, requested to end at %s",
		notAfter.Format(time.RFC3339), next.Sequence, next.NotAfter.Format(time.RFC3339))
	return t.applySuccessor(tx, &b, cur, iss, next, state.ActorTicker, reason, now, traceContext)
}

// renewalStart is when the renewal of cur, due at now, starts (RenewalStart): now, or the next
// opening of the bundle's maintenance window when that comes WindowMargin before the escalation.
// A stored window that cannot be read (its zone gone from the zone database) does not hold a
// renewal back.
func (t *Ticker) renewalStart(b store.Bundle, cur store.Certificate, now time.Time) time.Time {
	w, err := windowOf(b.MaintenanceWindow)
	if err != nil {
		t.Log.Error("maintenance window unreadable: the renewal starts now", "bundle_id", b.ID, "err", err)
		return now
	}
	if w == nil || !cur.EscalateAt.Valid {
		return now
	}
	_, client := t.CAs.Route(b.ProductID, b.ValidationType)
	return RenewalStart(w, now, db.FromMicros(cur.EscalateAt.Int64).Add(-WindowMargin(client)))
}

// applySuccessor records the successor of instance cur's certificate iss that next decided: an
// automatic application (the bundle template's information, a new key) for the same instance or
// for a later one (activating it), taking the bundle's renewal slot with a compare-and-set; or the
// end of hosting. The application is submitted to the CA by the submit sweep. actor and reason are
// the RENEWAL_STARTED event's: the ticker at the renewal time, or the customer (RenewCertificate,
// RevokeCertificate's replacement). traceContext is the trace the application continues
// (pkg/tracing): the ticker's renewal span, or the customer's call.
func (c *core) applySuccessor(tx *store.Tx, b *store.Bundle, cur store.Certificate, iss store.Issuance, next Successor,
	actor state.Actor, reason string, now time.Time, traceContext string) (SuccessorKind, error) {
	notAfter := db.FromMicros(iss.NotAfter)
	if next.Kind == HostingEnds {
		b.HostingStatus, b.HostingEndTime = store.HostingEnding, sql.NullInt64{Int64: iss.NotAfter, Valid: true}
		cur.EscalateAt = sql.NullInt64{} // nothing to escalate: no successor is due
		if err := tx.SaveBundle(b, nil); err != nil {
			return 0, err
		}
		if err := tx.SaveSchedule(&cur); err != nil {
			return 0, err
		}
		return HostingEnds, tx.Event(store.Event{AccountID: cur.AccountID, BundleID: b.ID, CertificateID: cur.ID,
			Type: store.EventHostingEnding, From: cur.State, To: cur.State, Actor: actor,
			Reason: fmt.Sprintf("no later instance in the %d-year subscription: hosting ends when this certificate expires at %s",
				b.SubscriptionYears, notAfter.Format(time.RFC3339))})
	}

	if !b.TemplateApplicationID.Valid {
		return 0, errNoTemplate
	}
	tmpl, err := tx.Application(b.TemplateApplicationID.String)
	if err != nil {
		return 0, err
	}
	info, err := infoFromRow(tmpl)
	if err != nil {
		return 0, err
	}
	if info.CSRPEM != "" { // not possible for a hosted bundle; never re-use a customer's key anyway
		info.CSRPEM, info.KeyAlgorithm = "", KeyECDSAP256
	}
	target, err := tx.CertificateAt(b.ID, next.Sequence)
	if err != nil {
		return 0, err
	}
	a := store.Application{
		ID: ids.New(ids.Application, now), CertificateID: target.ID, BundleID: b.ID, AccountID: b.AccountID,
		Status: store.AppSubmitting, Automatic: true, Actor: state.ActorTicker,
		RequestedNotAfter:  sql.NullInt64{Int64: db.Micros(next.NotAfter), Valid: true},
		ReplacesIssuanceID: cur.CurrentIssuanceID,
		NextPollAt:         sql.NullInt64{Int64: db.Micros(now), Valid: true},
		TraceContext:       traceContext,
	}
	if err := info.toRow(&a); err != nil {
		return 0, err
	}
	a.CAName, _ = c.CAs.Route(b.ProductID, b.ValidationType)
	if err := tx.InsertApplication(&a); err != nil {
		return 0, err
	}
	tx.AfterCommit(func() { c.Metrics.renewal(a.CAName, renewalStarted) })
	prevRenewal := b.RenewalApplicationID
	b.RenewalApplicationID = sql.NullString{String: a.ID, Valid: true}
	if err := tx.SaveBundle(b, &prevRenewal); err != nil {
		return 0, err
	}
	if err := tx.Event(store.Event{AccountID: cur.AccountID, BundleID: b.ID, CertificateID: cur.ID,
		Type: store.EventRenewalStarted, From: cur.State, To: cur.State, Actor: actor, Reason: reason}); err != nil {
		return 0, err
	}
	target.CurrentApplicationID = sql.NullString{String: a.ID, Valid: true}
	target.RetryAt, target.Retries = sql.NullInt64{}, 0 // a new renewal: its retries count from zero
	if next.Kind != Activate {
		return next.Kind, tx.SaveSchedule(&target)
	}
	if target.State == state.NotActivated {
		if err := tx.Transition(&target, state.PendingApplication, state.ActorTicker, store.EventActivated,
			fmt.Sprintf("activated by the renewal of instance %d", cur.Sequence)); err != nil {
			return 0, err
		}
	}
	return next.Kind, tx.TransitionSaving(&target, state.Validating, state.ActorTicker, store.EventApplicationSubmitted,
		fmt.Sprintf("application %s submitted automatically with the first application's information", a.ID))
}

// submit hands applications recorded by startRenewals (status SUBMITTING) to the CA. The key is
// generated and stored first, so a submission repeated after a crash sends the same CSR; the CA
// deduplicates on the application id.
func (t *Ticker) submit(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "submit", func() ([]store.Application, error) {
		return t.Store.ClaimApplications(ctx, store.AppSubmitting, now, t.cfg.Lease, t.cfg.Batch)
	}, func(a store.Application) error {
		err := t.submitOne(ctx, a, now)
		mu.Lock()
		if err == nil {
			st.Submitted++
		} else {
			st.SubmitErrors++
		}
		mu.Unlock()
		if errors.Is(err, errTransient) {
			return nil // already rescheduled with backoff
		}
		return err
	})
}

var errTransient = errors.New("transient CA error")

func (t *Ticker) submitOne(ctx context.Context, a store.Application, now time.Time) error {
	info, err := infoFromRow(a)
	if err != nil {
		return err
	}
	b, err := t.Store.BundleOf(ctx, a.BundleID)
	if err != nil {
		return err
	}
	hadKey := a.KeySealed.Valid
	csr, err := t.keyFor(&a, info)
	if err != nil {
		return err
	}
	if !hadKey {
		if err := t.write(ctx, now, func(tx *store.Tx) error { return tx.SetApplicationKey(&a) }); err != nil {
			return err
		}
	}
	req := caRequest(a, b, info, csr)
	req.Replaces = t.replaced(ctx, a)
	authority, err := t.caOf(a)
	if err != nil {
		return t.retryLater(ctx, a, now, 0, err)
	}
	release, err := t.caSlots.acquire(ctx, a.CAName, authority)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, caCallTimeout)
	cctx, span := caSpan(cctx, a, "submit")
	start := time.Now()
	sub, err := authority.Submit(cctx, req)
	cancel()
	release()
	endSpan(span, err)
	t.Metrics.caCall(a.CAName, "submit", start, err)
	if err != nil {
		return t.retryLater(ctx, a, now, ca.RetryAfter(err), err)
	}
	instr, err := json.Marshal(sub.Instructions)
	if err != nil {
		return err
	}
	a.Status, a.CARef, a.Instructions = store.AppPending, sql.NullString{String: sub.Ref, Valid: true}, string(instr)
	a.Attempts, a.LastError, a.NextPollAt = 0, sql.NullString{}, sql.NullInt64{Int64: db.Micros(now), Valid: true}
	return t.write(ctx, now, func(tx *store.Tx) error { return tx.UpdateApplication(&a, store.AppSubmitting) })
}

// retryLater records a transient CA failure and schedules the next attempt with backoff (at least
// retryAfter, when the CA said so).
func (t *Ticker) retryLater(ctx context.Context, a store.Application, now time.Time, retryAfter time.Duration, cause error) error {
	expect := a.Status
	a.Attempts++
	delay := t.cfg.Backoff.DelayAtLeast(a.Attempts, retryAfter)
	a.NextPollAt = sql.NullInt64{Int64: db.Micros(now.Add(delay)), Valid: true}
	a.LastError = sql.NullString{String: cause.Error(), Valid: true}
	level := slog.LevelWarn
	if a.Attempts >= 10 {
		level = slog.LevelError
	}
	t.Log.Log(ctx, level, "CA call failed; will retry", "application_id", a.ID, "status", a.Status, "attempts", a.Attempts,
		"retry_in", delay, "err", cause)
	if err := t.write(ctx, now, func(tx *store.Tx) error { return tx.UpdateApplication(&a, expect) }); err != nil {
		return err
	}
	return errTransient
}

// poll asks the CA about applications in flight and records verdicts.
func (t *Ticker) poll(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	count := func(f *int) { mu.Lock(); *f++; mu.Unlock() }
	return sweep(ctx, t, "poll", func() ([]store.Application, error) {
		return t.Store.ClaimApplications(ctx, store.AppPending, now, t.cfg.Lease, t.cfg.Batch)
	}, func(a store.Application) error {
		count(&st.Polled)
		authority, err := t.caOf(a)
		var res ca.Status
		if err == nil {
			release, aerr := t.caSlots.acquire(ctx, a.CAName, authority)
			if aerr != nil {
				return aerr
			}
			cctx, cancel := context.WithTimeout(ctx, caCallTimeout)
			cctx, span := caSpan(cctx, a, "status")
			start := time.Now()
			res, err = authority.Status(cctx, a.CARef.String)
			cancel()
			release()
			endSpan(span, err)
			t.Metrics.caCall(a.CAName, "status", start, err)
		}
		if err != nil {
			count(&st.PollErrors)
			if err := t.retryLater(ctx, a, now, ca.RetryAfter(err), err); !errors.Is(err, errTransient) {
				return err
			}
			return nil
		}
		switch res.State {
		case ca.Issued:
			err := t.recordIssued(ctx, a, res.ChainPEM, now)
			var verdict *caVerdict
			if errors.As(err, &verdict) {
				count(&st.Rejected)
				return t.recordRejected(ctx, a, ca.ReasonPolicy, verdict.msg, now)
			}
			if err == nil {
				count(&st.Issued)
			}
			return err
		case ca.Rejected:
			count(&st.Rejected)
			return t.recordRejected(ctx, a, res.Reason, res.Message, now)
		default:
			// Still verifying: poll again when the CA says (or after the backoff's base). Attempts
			// counts consecutive failures only, so a CA that was pending for an hour and then
			// fails once is retried soon, not after an hour's worth of doubling.
			a.Attempts, a.LastError = 0, sql.NullString{}
			delay := res.RetryAfter
			if delay <= 0 {
				delay = t.cfg.Backoff.Base
			}
			a.NextPollAt = sql.NullInt64{Int64: db.Micros(now.Add(min(delay, 4*t.cfg.Backoff.Max))), Valid: true}
			return t.write(ctx, now, func(tx *store.Tx) error { return tx.UpdateApplication(&a, store.AppPending) })
		}
	})
}

// caVerdict is an issued chain that does not match its application: treated as a rejection.
type caVerdict struct{ msg string }

func (v *caVerdict) Error() string { return v.msg }

// recordIssued records an issued certificate: the issuance, T0 and the coverage of every instance
// on the bundle's first issuance, and the instance's new state: HOSTED (its predecessor, if any,
// becomes ISSUED) for a hosted bundle, ISSUED otherwise.
func (t *Ticker) recordIssued(ctx context.Context, a store.Application, chainPEM []byte, now time.Time) error {
	info, err := infoFromRow(a)
	if err != nil {
		return err
	}
	pub, err := t.publicKey(a, info)
	if err != nil {
		return err
	}
	chain, err := checkChain(chainPEM, pub, info.Domains)
	if err != nil {
		t.Log.Error("CA returned a certificate that does not match the application", "application_id", a.ID, "err", err)
		return &caVerdict{msg: "the CA returned a certificate that does not match the application: " + err.Error()}
	}
	return t.write(ctx, now, func(tx *store.Tx) error {
		cur, err := tx.Application(a.ID)
		if err != nil || cur.Status != store.AppPending {
			return err // decided meanwhile
		}
		b, err := tx.Bundle(a.BundleID)
		if err != nil {
			return err
		}
		// The instance is one of its bundle's, which the placement reads anyway.
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(certs, func(c store.Certificate) bool { return c.ID == a.CertificateID })
		if i < 0 {
			return apierr.NotFound("certificate", a.CertificateID)
		}
		c := certs[i]
		leaf := chain.leaf
		iss := store.Issuance{
			ID: ids.New(ids.Issuance, now), CertificateID: c.ID, ApplicationID: a.ID, BundleID: b.ID, AccountID: b.AccountID,
			Serial: leaf.SerialNumber.Text(16), NotBefore: db.Micros(leaf.NotBefore), NotAfter: db.Micros(leaf.NotAfter),
			ChainPEM: chain.pem,
		}
		if err := tx.InsertIssuance(&iss); err != nil {
			return err
		}
		if a.Automatic {
			tx.AfterCommit(func() { t.Metrics.renewal(a.CAName, renewalSucceeded) })
		}
		cur.Status, cur.NextPollAt, cur.LastError = store.AppIssued, sql.NullInt64{}, sql.NullString{}
		if err := tx.UpdateApplication(&cur, store.AppPending); err != nil {
			return err
		}

		if err := setT0(tx, &b, &c, certs, leaf.NotBefore); err != nil {
			return err
		}
		if !a.Automatic {
			b.TemplateApplicationID = sql.NullString{String: a.ID, Valid: true}
		}
		if b.RenewalApplicationID.String == a.ID {
			b.RenewalApplicationID = sql.NullString{}
		}

		issued := fmt.Sprintf("certificate %s issued, valid %s to %s", iss.Serial,
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
		if err := t.placeIssued(tx, &b, &c, certs, a, iss, state.ActorTicker, store.EventIssued, issued, now); err != nil {
			return err
		}
		if err := tx.SaveBundle(&b, nil); err != nil {
			return err
		}
		return tx.ResolveCases(incidentOf(b, c.ID), c.ID, "certificate "+iss.Serial+" issued")
	})
}

// setT0 sets the bundle's T0 to notBefore, the not_before of its first certificate (issued or
// imported for instance c), if it has none yet: every instance's coverage (its planned subscription
// year) is known from then on. The other instances are saved; c is saved by the caller.
func setT0(tx *store.Tx, b *store.Bundle, c *store.Certificate, certs []store.Certificate, notBefore time.Time) error {
	if b.T0.Valid {
		return nil
	}
	b.T0 = sql.NullInt64{Int64: db.Micros(notBefore), Valid: true}
	for i := range certs {
		start, end := Coverage(notBefore, certs[i].Sequence)
		certs[i].CoverageStart = sql.NullInt64{Int64: db.Micros(start), Valid: true}
		certs[i].CoverageEnd = sql.NullInt64{Int64: db.Micros(end), Valid: true}
		if certs[i].ID == c.ID {
			c.CoverageStart, c.CoverageEnd = certs[i].CoverageStart, certs[i].CoverageEnd
			continue
		}
		if err := tx.SaveSchedule(&certs[i]); err != nil {
			return err
		}
	}
	return nil
}

// holdsCertificate reports whether instance c has a certificate of its own (valid or expired),
// which an application in flight for it would replace: a re-issue, not a first application.
func holdsCertificate(c store.Certificate) bool {
	switch c.State {
	case state.Hosted, state.Issued, state.Expired, state.Revoked:
		return c.CurrentIssuanceID.Valid
	}
	return false
}

// placeIssued makes iss (issued or imported for application a) instance c's certificate in use:
// the state (HOSTED for a hosted bundle, its predecessor becoming ISSUED; ISSUED otherwise), the
// renewal schedule of a hosted one, and the bundle's hosting status and current certificate. The
// caller saves b. actor, eventType and what are the history event of the instance's new
// certificate.
func (c *core) placeIssued(tx *store.Tx, b *store.Bundle, cert *store.Certificate, certs []store.Certificate, a store.Application,
	iss store.Issuance, actor state.Actor, eventType, what string, now time.Time) error {
	notBefore, notAfter := db.FromMicros(iss.NotBefore), db.FromMicros(iss.NotAfter)
	cert.CurrentIssuanceID = sql.NullString{String: iss.ID, Valid: true}
	cert.ExpireAt = sql.NullInt64{Int64: iss.NotAfter, Valid: true}
	cert.RetryAt, cert.Retries = sql.NullInt64{}, 0
	// The first expiry reminder is planned below (firstReminder), or by the remind sweep.
	cert.RemindAt = sql.NullInt64{Int64: db.Micros(now), Valid: true}
	if b.Hosting || cert.State == state.Issued {
		// The state changes below, if at all, with an event of its own (HOSTED), or not at all (a
		// re-issue of an ISSUED instance): this event says what was issued.
		if err := tx.Event(store.Event{AccountID: cert.AccountID, BundleID: b.ID, CertificateID: cert.ID, Type: eventType,
			From: cert.State, To: cert.State, Actor: actor, Reason: what}); err != nil {
			return err
		}
	}
	var to state.State // the instance's new state, if it changes
	var toEvent, toWhat string
	if b.Hosting {
		// The predecessor stays valid until it expires, no longer hosted.
		for i := range certs {
			o := certs[i]
			if o.ID == cert.ID || o.State != state.Hosted {
				continue
			}
			// Its successor is in place: no more renewals, escalations or expiry reminders.
			o.RenewAt, o.EscalateAt, o.ARICheckAt, o.RetryAt, o.RemindAt = sql.NullInt64{}, sql.NullInt64{}, sql.NullInt64{}, sql.NullInt64{}, sql.NullInt64{}
			if err := tx.TransitionSaving(&o, state.Issued, state.ActorTicker, store.EventSuperseded,
				fmt.Sprintf("superseded by instance %d's certificate %s", cert.Sequence, iss.Serial)); err != nil {
				return err
			}
			if err := tx.ResolveCases("", o.ID, "the successor certificate is in place"); err != nil {
				return err
			}
		}
		if cert.State != state.Hosted {
			to, toEvent, toWhat = state.Hosted, store.EventHosted, "hosted: the service renews it before it expires"
		}
		c.scheduleHosted(cert, *b, a, notBefore, notAfter, now)
		switch b.HostingStatus {
		case store.HostingWaiting, store.HostingLapsed, "":
			b.HostingStatus = store.HostingActive
		}
	} else if cert.State != state.Issued {
		to, toEvent, toWhat = state.Issued, eventType, what
	}
	placed := cert.State
	if to != "" {
		placed = to
	}
	if err := firstReminder(tx, cert, placed, certs, iss, now); err != nil {
		return err
	}
	// The state changes, if it does, in the statement that saves the schedule.
	if to != "" {
		if err := tx.TransitionSaving(cert, to, actor, toEvent, toWhat); err != nil {
			return err
		}
	} else if err := tx.SaveSchedule(cert); err != nil {
		return err
	}
	return tx.RefreshCurrent(b)
}

// scheduleHosted plans the renewal of a hosted certificate valid [notBefore, notAfter), issued
// for application a: its renewal time, its escalation, and whether to ask the CA for a renewal
// window.
func (c *core) scheduleHosted(cert *store.Certificate, b store.Bundle, a store.Application, notBefore, notAfter, now time.Time) {
	lifetime := notAfter.Sub(notBefore)
	renewBefore := RenewBefore(lifetime, time.Duration(b.RenewBeforeSeconds.Int64)*time.Second)
	cert.RenewAt = sql.NullInt64{Int64: db.Micros(notAfter.Add(-renewBefore)), Valid: true}
	cert.EscalateAt = sql.NullInt64{Int64: db.Micros(notAfter.Add(-EscalateBefore(lifetime, renewBefore))), Valid: true}
	cert.ARICheckAt = sql.NullInt64{}
	if a.Imported {
		return // no CA of ours issued it: no renewal window to ask for
	}
	if client, err := c.caOf(a); err == nil {
		if _, ok := client.(ca.RenewalInformer); ok {
			cert.ARICheckAt = sql.NullInt64{Int64: db.Micros(now), Valid: true} // ask for the window at once
		}
	}
}

// recordRejected records the CA's rejection: the instance becomes VALIDATION_FAILED and the
// incident's support case is opened (or told, incidents.go), urgent when it was a hosted renewal
// (a certificate in use is going to expire). A rejected hosted renewal is tried again by itself
// (retry.go), as long as the certificate in use is valid.
func (t *Ticker) recordRejected(ctx context.Context, a store.Application, reason ca.Reason, msg string, now time.Time) error {
	return t.write(ctx, now, func(tx *store.Tx) error {
		cur, err := tx.Application(a.ID)
		if err != nil || cur.Status != store.AppPending {
			return err
		}
		if a.Automatic {
			tx.AfterCommit(func() { t.Metrics.renewal(a.CAName, renewalFailed) })
		}
		cur.Status, cur.NextPollAt = store.AppRejected, sql.NullInt64{}
		cur.RejectReason = sql.NullString{String: string(reason), Valid: true}
		cur.RejectMessage = sql.NullString{String: msg, Valid: true}
		if err := tx.UpdateApplication(&cur, store.AppPending); err != nil {
			return err
		}
		c, err := tx.Certificate(a.CertificateID)
		if err != nil {
			return err
		}
		b, err := tx.Bundle(a.BundleID)
		if err != nil {
			return err
		}
		if b.RenewalApplicationID.String == a.ID {
			b.RenewalApplicationID = sql.NullString{}
			if err := tx.SaveBundle(&b, nil); err != nil {
				return err
			}
		}
		summary := fmt.Sprintf("%s verification failed for %s: %s", reason, a.Domains, msg)
		if holdsCertificate(c) {
			// A re-issue inside the instance: its certificate in use is what the state describes,
			// and it is still there; the rejection is the instance's renewal status.
			if err := tx.Event(store.Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.ID,
				Type: store.EventRenewalFailed, From: c.State, To: c.State, Actor: state.ActorTicker, Reason: summary}); err != nil {
				return err
			}
		} else if err := tx.Transition(&c, state.ValidationFailed, state.ActorTicker, store.EventValidationFailed, summary); err != nil {
			if apierr.IsClientError(err) {
				t.Log.Error("rejection arrived for an instance in an unexpected state", "certificate_id", c.ID, "state", c.State)
			}
			return err
		}
		// A renewal (automatic, or resubmitted by a person) of a hosted bundle is tried again by
		// itself; a first application waits for the customer.
		renewal := b.Hosting && a.ReplacesIssuanceID.Valid
		note := summary
		if c.Retries > 0 {
			note = fmt.Sprintf("automatic retry %d: %s", c.Retries, summary)
		}
		if renewal {
			plan, err := t.planRetry(tx, b, &c, a, reason, now)
			if err != nil {
				return err
			}
			if plan != "" {
				note += "; " + plan
			}
		}
		_, err = t.reportIncident(tx, b, report{cert: c, applicationID: a.ID, kind: store.CaseValidationFailed,
			urgent: a.Automatic || renewal, reason: string(reason), summary: note})
		return err
	})
}

// caSpan starts the span of a CA call for application a, continuing the trace that made a (a
// renewal's, or the customer's call's).
func caSpan(ctx context.Context, a store.Application, call string) (context.Context, trace.Span) {
	return tracing.Tracer().Start(tracing.Extract(ctx, a.TraceContext), "ca."+call, trace.WithAttributes(
		attribute.String("certhosting.ca", a.CAName), attribute.String("certhosting.application_id", a.ID)))
}

// endSpan ends a span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}
