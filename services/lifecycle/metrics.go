package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Metrics are the lifecycle service's own Prometheus metrics (docs/metrics.md). Events (renewals
// started, succeeded, failed; CA calls; ticker sweeps) are counted as they happen, after their
// transaction commits; the state of things (certificates by state, expiries, pending
// applications, open cases) is read from the store at scrape time by StoreCollector, so it is
// right after a restart and the same on every replica. A nil *Metrics records nothing.
type Metrics struct {
	renewals      *prometheus.CounterVec
	caCalls       *prometheus.HistogramVec
	sweepDuration prometheus.Histogram
	lastSweep     prometheus.Gauge
}

// Renewal outcomes, the "outcome" label of certhosting_renewals_total.
const (
	renewalStarted   = "started"
	renewalSucceeded = "succeeded"
	renewalFailed    = "failed"
)

// NewMetrics makes the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certhosting_renewals_total",
			Help: "Automatic renewals of hosted certificates by CA and outcome: started (an application made for the successor), succeeded (its certificate issued), failed (the CA rejected it).",
		}, []string{"ca", "outcome"}),
		caCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certhosting_ca_call_duration_seconds",
			Help:    "Calls to certificate authorities by CA, call (submit, status) and outcome (ok, error).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"ca", "call", "outcome"}),
		sweepDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "certhosting_ticker_sweep_duration_seconds",
			Help:    "How long each renewal ticker sweep took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certhosting_ticker_last_success_timestamp_seconds",
			Help: "When the renewal ticker last finished a sweep without error (Unix time).",
		}),
	}
	reg.MustRegister(m.renewals, m.caCalls, m.sweepDuration, m.lastSweep)
	return m
}

func (m *Metrics) renewal(caName, outcome string) {
	if m != nil {
		m.renewals.WithLabelValues(caName, outcome).Inc()
	}
}

// caCall records a CA call that began at start.
func (m *Metrics) caCall(caName, call string, start time.Time, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.caCalls.WithLabelValues(caName, call, outcome).Observe(time.Since(start).Seconds())
}

// sweep records a ticker sweep that began at start (real time) for the tick at now.
func (m *Metrics) sweep(start, now time.Time, err error) {
	if m == nil {
		return
	}
	m.sweepDuration.Observe(time.Since(start).Seconds())
	if err == nil {
		m.lastSweep.Set(float64(now.UnixMilli()) / 1000)
	}
}

// StoreCollector reads the lifecycle store's state at each scrape: certificates by state and
// hosting status, each bundle's certificate expiry (optional: one series per bundle), pending
// applications and the oldest one's age, open support cases. A scrape that cannot read the store
// reports certhosting_store_up 0 and none of the rest, rather than failing the scrape.
type StoreCollector struct {
	store   *store.Store
	now     func() time.Time
	log     *slog.Logger
	expiry  bool
	timeout time.Duration

	certificates, bundleExpiry, pending, oldestPending, openCases, up *prometheus.Desc
}

// NewStoreCollector returns the collector; perBundleExpiry adds
// certhosting_bundle_not_after_timestamp_seconds, one series per bundle with a certificate in use
// (as cert-manager's certificate expiration metric), which -metrics-bundle-expiry=false turns off
// where the number of bundles would make it too many series.
func NewStoreCollector(st *store.Store, now func() time.Time, log *slog.Logger, perBundleExpiry bool) *StoreCollector {
	return &StoreCollector{
		store: st, now: now, log: log, expiry: perBundleExpiry, timeout: 10 * time.Second,
		certificates: prometheus.NewDesc("certhosting_certificates",
			"Certificate instances by state and their bundle's hosting status.", []string{"state", "hosting_status"}, nil),
		bundleExpiry: prometheus.NewDesc("certhosting_bundle_not_after_timestamp_seconds",
			"When the certificate in use of each bundle expires (Unix time), and whether a successor is under way (renewing 1).",
			[]string{"bundle_id", "account_id", "hosting_status", "renewing"}, nil),
		pending: prometheus.NewDesc("certhosting_applications_pending",
			"Applications waiting on the CA (being submitted or validated).", nil, nil),
		oldestPending: prometheus.NewDesc("certhosting_applications_oldest_pending_age_seconds",
			"Age of the oldest application still waiting on the CA; 0 when there is none.", nil, nil),
		openCases: prometheus.NewDesc("certhosting_support_cases_open",
			"Support cases not resolved, by urgency.", []string{"urgent"}, nil),
		up: prometheus.NewDesc("certhosting_store_up",
			"Whether the last scrape could read the lifecycle database (1) or not (0).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StoreCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.certificates, c.bundleExpiry, c.pending, c.oldestPending, c.openCases, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StoreCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	snap, err := c.store.MetricsSnapshot(ctx, c.expiry)
	if err != nil {
		c.log.Warn("metrics: cannot read the lifecycle database", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, r := range snap.Certificates {
		ch <- prometheus.MustNewConstMetric(c.certificates, prometheus.GaugeValue, float64(r.Count), r.State, r.HostingStatus)
	}
	for _, b := range snap.Bundles {
		renewing := "0"
		if b.Renewing {
			renewing = "1"
		}
		ch <- prometheus.MustNewConstMetric(c.bundleExpiry, prometheus.GaugeValue, float64(b.NotAfter)/1e6, b.BundleID, b.AccountID, b.HostingStatus, renewing)
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(snap.PendingApplications))
	age := 0.0
	if snap.OldestPending != 0 {
		age = max(0, c.now().Sub(db.FromMicros(snap.OldestPending)).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldestPending, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(c.openCases, prometheus.GaugeValue, float64(snap.OpenCases), "false")
	ch <- prometheus.MustNewConstMetric(c.openCases, prometheus.GaugeValue, float64(snap.OpenUrgentCases), "true")
}
