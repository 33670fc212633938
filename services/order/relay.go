package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/order/store"
)

// BundleCreator is the part of the lifecycle service the relay needs.
type BundleCreator interface {
	CreateBundle(ctx context.Context, in *lifecyclev1.CreateBundleRequest, opts ...grpc.CallOption) (*lifecyclev1.CreateBundleResponse, error)
}

// BundleCanceller is the part of the lifecycle service that cancels a refunded order's bundle.
// The relay's client implements it (the lifecycle service's generated client does).
type BundleCanceller interface {
	CancelBundle(ctx context.Context, in *lifecyclev1.CancelBundleRequest, opts ...grpc.CallOption) (*lifecyclev1.CancelBundleResponse, error)
}

// RelayConfig tunes the relay; zero values take the defaults.
type RelayConfig struct {
	Batch       int             // messages read per sweep (default 256)
	Concurrency int             // CreateBundle calls in flight (default: Batch, the whole sweep)
	CallTimeout time.Duration   // deadline of each CreateBundle call (default 5s)
	Poll        time.Duration   // longest sleep between sweeps when nothing wakes the relay (default 1s)
	Backoff     backoff.Policy  // retry delays (default 500ms doubling to 1m)
	Lease       time.Duration   // how long a claimed message is this relay's alone (default 30s; store.ClaimOutbox)
	Clock       clockwork.Clock // default: real clock
	Log         *slog.Logger    // default: discard
}

// Relay delivers the outbox to the lifecycle service. Each message is retried, with exponential
// backoff and jitter, until the lifecycle service acknowledges it; the row is deleted in the same
// transaction that records the acknowledgement on the order. A crash between the acknowledgement
// and that transaction makes the relay deliver the message again after restart, and CreateBundle
// is idempotent on the bundle id, so the purchase still gets exactly one bundle.
//
// Several relays (one per replica of the order service on a shared PostgreSQL database) share the
// outbox: each sweep claims the messages it attempts for RelayConfig.Lease (store.ClaimOutbox), so
// two relays never deliver the same message at once, and a dead relay's claims fall due again when
// their lease ends.
type Relay struct {
	store  *store.Store
	client BundleCreator
	cfg    RelayConfig
	wake   chan struct{}
}

// NewRelay makes a relay; call Run to start it.
func NewRelay(st *store.Store, client BundleCreator, cfg RelayConfig) *Relay {
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Concurrency <= 0 {
		// The whole sweep at once: the lifecycle service group-commits concurrent CreateBundle
		// calls, so a sweep sent in one wave costs it one commit rather than Batch/Concurrency
		// commits in a row, and the relay no longer falls behind the payments.
		cfg.Concurrency = cfg.Batch
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Backoff == (backoff.Policy{}) {
		cfg.Backoff = backoff.Policy{Base: 500 * time.Millisecond, Max: time.Minute}
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Relay{store: st, client: client, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify wakes the relay (a payment was committed). It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	for {
		n, err := r.Sweep(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := r.cfg.Poll
		switch {
		case err != nil:
			// The outcomes were not recorded, so the messages just attempted are still due:
			// sweeping again at once would call the lifecycle service in a tight loop.
			r.cfg.Log.Error("outbox sweep failed", "err", err)
		case n == r.cfg.Batch:
			continue // more may be due right now
		default:
			if next, ok, err := r.store.NextOutboxTime(ctx); err == nil && ok {
				wait = min(wait, max(0, next.Sub(r.cfg.Clock.Now())))
			}
		}
		if wait == 0 {
			continue
		}
		t := r.cfg.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
		case <-t.Chan():
		}
		t.Stop()
	}
}

// DefaultLease is how long a relay holds the messages it claimed before another may take them.
const DefaultLease = 30 * time.Second

// Sweep claims every message due now (up to Batch), makes one attempt at each and records the
// outcomes. It returns how many messages it attempted.
func (r *Relay) Sweep(ctx context.Context) (int, error) {
	claimedAt := r.cfg.Clock.Now()
	due, err := r.store.ClaimOutbox(ctx, claimedAt, r.cfg.Lease, r.cfg.Batch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	var (
		mu     sync.Mutex
		ok     []store.Delivered
		failed []store.Failed
		wg     sync.WaitGroup
		sem    = make(chan struct{}, r.cfg.Concurrency)
	)
	for _, m := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := r.deliver(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok = append(ok, d)
				return
			}
			attempts := m.Attempts + 1
			delay := r.cfg.Backoff.Delay(attempts)
			level := slog.LevelWarn
			if attempts >= 10 {
				level = slog.LevelError
			}
			r.cfg.Log.Log(ctx, level, "outbox delivery failed; will retry", "message_id", m.ID, "order_id", m.OrderID,
				"attempts", attempts, "retry_in", delay, "code", status.Code(err).String(), "err", err)
			failed = append(failed, store.Failed{MessageID: m.ID, Attempts: attempts, Next: r.cfg.Clock.Now().Add(delay), Err: err.Error()})
		}()
	}
	wg.Wait()
	if ctx.Err() != nil && len(ok) == 0 {
		// Shutting down: the failures are our own cancellations, not the receiver's; give the
		// messages back as they were, for another replica to deliver at once (if this fails, they
		// are due again when the lease ends).
		if err := r.store.ReleaseOutbox(context.WithoutCancel(ctx), due, claimedAt, r.cfg.Lease); err != nil {
			r.cfg.Log.Warn("could not give back claimed outbox messages; they are due again when the lease ends", "err", err)
		}
		return len(due), nil
	}
	// The outcomes are worth keeping: a delivery acknowledged but not recorded is repeated. When
	// the database is away (restarting, say), try again for up to half the lease, after which
	// another relay may take the messages over anyway.
	pause, giveUp := 100*time.Millisecond, claimedAt.Add(r.cfg.Lease/2)
	for {
		err := r.store.RecordDeliveries(context.WithoutCancel(ctx), r.cfg.Clock.Now(), ok, failed)
		if err == nil {
			return len(due), nil
		}
		if !db.IsUnavailable(err) || errors.Is(err, db.ErrClosed) || !r.cfg.Clock.Now().Add(pause).Before(giveUp) {
			return len(due), fmt.Errorf("record deliveries: %w", err)
		}
		r.cfg.Log.Warn("recording deliveries failed; trying again", "in", pause, "err", err)
		select {
		case <-ctx.Done():
			return len(due), fmt.Errorf("record deliveries: %w", err)
		case <-r.cfg.Clock.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// deliver makes one attempt at a message. An error means "try again later"; a Delivered is final.
func (r *Relay) deliver(ctx context.Context, m store.OutboxMessage) (store.Delivered, error) {
	d := store.Delivered{MessageID: m.ID, OrderID: m.OrderID, Kind: m.Kind}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	// The delivery continues the trace of the call that queued the message (PayOrder).
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, m.TraceContext), "outbox.deliver "+m.Kind,
		trace.WithAttributes(attribute.String("certhosting.order_id", m.OrderID), attribute.Int("certhosting.attempt", m.Attempts+1)))
	defer span.End()
	switch m.Kind {
	case store.OutboxKindCreateBundle:
		var req lifecyclev1.CreateBundleRequest
		if err := protojson.Unmarshal([]byte(m.Payload), &req); err != nil {
			return d, fmt.Errorf("decode outbox payload: %w", err)
		}
		resp, err := r.client.CreateBundle(ctx, &req)
		if err != nil {
			return d, err
		}
		b := resp.GetBundle()
		if b.GetBundleId() != req.GetBundleId() {
			return d, errors.New("lifecycle service answered for another bundle")
		}
		d.CertificateIDs = make([]string, 0, len(b.GetCertificates()))
		for _, c := range b.GetCertificates() {
			d.CertificateIDs = append(d.CertificateIDs, c.GetCertificateId())
		}
		return d, nil
	case store.OutboxKindCancelBundle:
		// A cancellation sent before its bundle was created (the relay delivers concurrently) is
		// NotFound: retried, like any other error, until the bundle is there. FailedPrecondition is
		// the lifecycle service's final answer: the bundle was used, the refund is refused.
		var req lifecyclev1.CancelBundleRequest
		if err := protojson.Unmarshal([]byte(m.Payload), &req); err != nil {
			return d, fmt.Errorf("decode outbox payload: %w", err)
		}
		canceller, ok := r.client.(BundleCanceller)
		if !ok {
			return d, errors.New("the relay's lifecycle client cannot cancel bundles")
		}
		_, err := canceller.CancelBundle(ctx, &req)
		if status.Code(err) == codes.FailedPrecondition {
			d.Refused = status.Convert(err).Message()
			return d, nil
		}
		return d, err
	}
	return d, fmt.Errorf("unknown outbox message kind %q", m.Kind)
}
