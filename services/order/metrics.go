package order

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/order/store"
)

// OutboxCollector reads the outbox at each scrape: how many paid purchases (and refunds) wait to
// be handed to the lifecycle service, and how long the oldest has waited. Read from the store, it
// is right after a restart and the same on every replica.
type OutboxCollector struct {
	store *store.Store
	now   func() time.Time
	log   *slog.Logger

	backlog, oldest, up *prometheus.Desc
}

// NewOutboxCollector returns the collector.
func NewOutboxCollector(st *store.Store, now func() time.Time, log *slog.Logger) *OutboxCollector {
	return &OutboxCollector{
		store: st, now: now, log: log,
		backlog: prometheus.NewDesc("certhosting_outbox_backlog", "Outbox messages not yet delivered to the lifecycle service.", nil, nil),
		oldest: prometheus.NewDesc("certhosting_outbox_oldest_age_seconds",
			"Age of the oldest undelivered outbox message; 0 when there is none.", nil, nil),
		up: prometheus.NewDesc("certhosting_store_up", "Whether the last scrape could read the order database (1) or not (0).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *OutboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.oldest
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *OutboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, oldest, err := c.store.OutboxBacklog(ctx)
	if err != nil {
		c.log.Warn("metrics: cannot read the order database", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(n))
	age := 0.0
	if oldest != 0 {
		age = max(0, c.now().Sub(db.FromMicros(oldest)).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
