package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// BatchBundleCreator is the lifecycle service's batch form of CreateBundle. When the relay's
// client implements it (the generated client does), the relay sends a sweep's CreateBundle
// messages in BatchCreateBundles calls: one call and one lifecycle commit for up to
// maxBatchCreate purchases instead of one each. A client without it gets one call per message.
type BatchBundleCreator interface {
	BatchCreateBundles(ctx context.Context, in *lifecyclev1.BatchCreateBundlesRequest, opts ...grpc.CallOption) (*lifecyclev1.BatchCreateBundlesResponse, error)
}

// maxBatchCreate is the most requests the lifecycle service takes in one BatchCreateBundles call.
const maxBatchCreate = 1000

// BundleCanceller is the part of the lifecycle service that cancels a refunded order's bundle.
// The relay's client implements it (the lifecycle service's generated client does).
type BundleCanceller interface {
	CancelBundle(ctx context.Context, in *lifecyclev1.CancelBundleRequest, opts ...grpc.CallOption) (*lifecyclev1.CancelBundleResponse, error)
}

// RelayConfig tunes the relay; zero values take the defaults.
type RelayConfig struct {
	Batch       int             // messages read per sweep (default 256)
	Concurrency int             // lifecycle calls in flight; a BatchCreateBundles call is one (default: Batch, the whole sweep)
	CallTimeout time.Duration   // deadline of each CreateBundle call, and of a BatchCreateBundles call per 256 messages (default 5s)
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
	// record keeps the outcome of one attempt at m.
	record := func(m store.OutboxMessage, d store.Delivered, err error) {
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
	}
	// one delivers m on its own, in a goroutine of the sweep.
	one := func(m store.OutboxMessage) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := r.deliver(ctx, m)
			record(m, d, err)
		}()
	}
	single := due
	if batcher, isBatcher := r.client.(BatchBundleCreator); isBatcher {
		var creates []store.OutboxMessage
		single = nil
		for _, m := range due {
			if m.Kind == store.OutboxKindCreateBundle {
				creates = append(creates, m)
			} else {
				single = append(single, m)
			}
		}
		for chunk := range slices.Chunk(creates, maxBatchCreate) {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				refused := r.deliverBatch(ctx, batcher, chunk, record)
				<-sem // before one takes slots of its own
				// The lifecycle service refused the batch for one of its messages: deliver them
				// one by one, so that message fails alone and the others go through.
				for _, m := range refused {
					one(m)
				}
			}()
		}
	}
	for _, m := range single {
		one(m)
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

// deliverBatch makes one BatchCreateBundles attempt at msgs, CreateBundle messages, and records
// each message's outcome, with the same meaning as deliver's: a bundle answered is delivered, an
// error is retried with the message's own backoff. A message whose payload cannot be decoded
// fails alone, before the call. When the lifecycle service refused the batch as a whole because
// of one request (InvalidArgument or AlreadyExists name requests[i]), it records nothing for the
// messages sent and returns them: the batch is all or nothing, so the caller delivers those
// messages one by one instead, and only the bad one keeps failing.
func (r *Relay) deliverBatch(ctx context.Context, client BatchBundleCreator, msgs []store.OutboxMessage,
	record func(store.OutboxMessage, store.Delivered, error)) (refused []store.OutboxMessage) {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout(r.cfg.CallTimeout, len(msgs)))
	defer cancel()
	links := make([]trace.Link, 0, len(msgs))
	sent := make([]store.OutboxMessage, 0, len(msgs))
	req := &lifecyclev1.BatchCreateBundlesRequest{Requests: make([]*lifecyclev1.CreateBundleRequest, 0, len(msgs))}
	for _, m := range msgs {
		var one lifecyclev1.CreateBundleRequest
		if err := protojson.Unmarshal([]byte(m.Payload), &one); err != nil {
			record(m, store.Delivered{MessageID: m.ID, OrderID: m.OrderID, Kind: m.Kind}, fmt.Errorf("decode outbox payload: %w", err))
			continue
		}
		sent = append(sent, m)
		req.Requests = append(req.Requests, &one)
		links = append(links, trace.LinkFromContext(tracing.Extract(context.Background(), m.TraceContext)))
	}
	if len(sent) == 0 {
		return nil
	}
	// The call continues the trace of the first message's PayOrder (so a lone purchase is traced
	// end to end, as with CreateBundle) and links to every message's trace, the first included.
	ctx, span := tracing.Tracer().Start(tracing.Extract(ctx, sent[0].TraceContext), "outbox.deliver "+store.OutboxKindCreateBundle,
		trace.WithLinks(links...), trace.WithAttributes(attribute.Int("certhosting.batch_size", len(sent))))
	defer span.End()
	resp, err := client.BatchCreateBundles(ctx, req)
	if c := status.Code(err); len(sent) > 1 && (c == codes.InvalidArgument || c == codes.AlreadyExists) {
		r.cfg.Log.Warn("lifecycle service refused an outbox batch; delivering its messages one by one", "messages", len(sent), "err", err)
		return sent
	}
	for i, m := range sent {
		d := store.Delivered{MessageID: m.ID, OrderID: m.OrderID, Kind: m.Kind}
		if err != nil {
			record(m, d, err) // the whole call failed: every message retries with its backoff
			continue
		}
		var bad error
		d.CertificateIDs, bad = bundleDelivered(req.GetRequests()[i], resp.GetBundles(), i)
		record(m, d, bad)
	}
	return nil
}

// batchCallUnit is how many messages of a BatchCreateBundles call one CallTimeout covers: the
// default sweep (256) gets CallTimeout, a call of 1000 four times it, so that a larger
// -relay-batch does not time out calls a healthy lifecycle service is still writing.
const batchCallUnit = 256

// batchTimeout is the deadline of a BatchCreateBundles call of n messages.
func batchTimeout(callTimeout time.Duration, n int) time.Duration {
	return callTimeout * time.Duration((n+batchCallUnit-1)/batchCallUnit)
}

// bundleDelivered checks that bundles[i], the answer to req, is req's bundle and returns its
// certificate ids.
func bundleDelivered(req *lifecyclev1.CreateBundleRequest, bundles []*lifecyclev1.Bundle, i int) ([]string, error) {
	if i >= len(bundles) {
		return nil, errors.New("lifecycle service answered fewer bundles than it was sent")
	}
	b := bundles[i]
	if b.GetBundleId() != req.GetBundleId() {
		return nil, errors.New("lifecycle service answered for another bundle")
	}
	ids := make([]string, 0, len(b.GetCertificates()))
	for _, c := range b.GetCertificates() {
		ids = append(ids, c.GetCertificateId())
	}
	return ids, nil
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
		d.CertificateIDs, err = bundleDelivered(&req, []*lifecyclev1.Bundle{resp.GetBundle()}, 0)
		return d, err
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
