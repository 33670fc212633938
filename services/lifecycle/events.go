package lifecycle

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// EventHub fans the events committed on one database out to the WatchEvents streams of this
// process.
//
// Every stream used to read the store after every commit: 10,000 streams meant 10,000 queries per
// commit. The hub reads each commit's new events once, for all accounts (by the event_id primary
// key), keeps the newest hubWindow of them in memory by account, and wakes only the streams that
// watch the accounts (or bundles) that got events. A stream takes its events from that window,
// and reads the store itself only when its cursor is older than the window: a stream resuming
// from an old event id, or one that fell more than hubWindow events behind. A slow reader thus catches up from the store and never
// holds the window, or anyone else's delivery, back; gRPC's flow control bounds what it buffers.
//
// Event ids increase in commit order (they are allocated inside the writing transaction, under
// the writer's lock), so reading after the newest id read misses nothing. The store calls Notify
// after each commit with events, and FollowCommits calls it for commits of other replicas; there is
// no other poll. The reader runs only while a stream is open, so an idle process and a test that
// opens no stream have no goroutine for it.
type EventHub struct {
	kick   chan struct{} // Notify → reader; one pending kick stands for any number
	window int           // events kept (hubWindow; tests make it small)

	mu     sync.Mutex
	st     *store.Store
	log    *slog.Logger
	subs   map[subKey]map[*eventSub]struct{} // by what they watch
	nsubs  int
	cancel context.CancelFunc // the running reader's; nil when none runs
	gen    int                // bumped when a reader starts or stops: a stopped reader's reads are dropped
	// The window: every event with start < event_id <= tail, by account, oldest first; order
	// holds their accounts in id order, so the oldest is dropped first.
	start, tail int64
	byAccount   map[string][]*hubEvent
	order       []string
}

// hubEvent is an event of the window, with its WatchEvents message encoded once for every stream
// that sends it. With 10,000 streams on one account each event goes out 10,000 times; marshalling
// it 10,000 times was the fan-out's own cost, beside the framing.
type hubEvent struct {
	store.Event
	once sync.Once
	msg  *grpc.PreparedMsg // nil if encoding failed: each stream then sends the message itself
}

// message is what a stream sends for the event: the message encoded by the first stream that sent
// it (grpc.PreparedMsg, which holds the bytes for any number of sends on any stream). The encoding
// is the stream's codec and compressor; every stream of the service has the same ones, since the
// service registers no compressor (were one registered, a stream that negotiated it would need a
// message of its own).
func (e *hubEvent) message(s grpc.ServerStream) any {
	e.once.Do(func() {
		m := new(grpc.PreparedMsg)
		if m.Encode(s, &lifecyclev1.WatchEventsResponse{Event: eventProto(e.Event)}) == nil {
			e.msg = m
		}
	})
	if e.msg == nil {
		return &lifecyclev1.WatchEventsResponse{Event: eventProto(e.Event)}
	}
	return e.msg
}

// eventSub is one stream's registration: woken (a one-slot channel) when what it watches gets
// events.
type eventSub struct {
	key  subKey
	wake chan struct{}
}

// subKey is what a stream watches: an account's events, or (bundle not empty) one bundle's. A
// bundle's event wakes both its account's streams and its own, and no other bundle's: 10,000
// streams of one account, each on its own bundle, are not all woken for each event.
type subKey struct{ account, bundle string }

// hubWindow is how many of the newest events the hub keeps (a few MB); hubBatch how many it reads
// at a time.
const (
	hubWindow = 16384
	hubBatch  = 1000
)

// NewEventHub makes a hub. It reads from the store of the first server made with it (NewServer).
func NewEventHub() *EventHub {
	return &EventHub{kick: make(chan struct{}, 1), window: hubWindow, subs: map[subKey]map[*eventSub]struct{}{}, byAccount: map[string][]*hubEvent{}}
}

// attach gives the hub its store; the first attach wins (every server of a process shares one
// database).
func (h *EventHub) attach(st *store.Store, log *slog.Logger) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.st == nil {
		h.st, h.log = st, log
	}
}

// Notify says events were committed. It never blocks.
func (h *EventHub) Notify() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// subscribe registers a stream of the account (of one of its bundles, when bundleID is not empty),
// starting the reader if none runs (at the newest event id: streams behind it read the store).
func (h *EventHub) subscribe(ctx context.Context, account, bundleID string) (*eventSub, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel == nil {
		last, err := h.st.LastEventID(ctx)
		if err != nil {
			return nil, err
		}
		h.gen++
		h.start, h.tail = last, last
		clear(h.byAccount)
		h.order = h.order[:0]
		rctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		go h.read(rctx, h.gen)
	}
	sub := &eventSub{key: subKey{account, bundleID}, wake: make(chan struct{}, 1)}
	if h.subs[sub.key] == nil {
		h.subs[sub.key] = map[*eventSub]struct{}{}
	}
	h.subs[sub.key][sub] = struct{}{}
	h.nsubs++
	return sub, nil
}

// unsubscribe ends a stream's registration; the last one stops the reader and drops the window.
func (h *EventHub) unsubscribe(sub *eventSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[sub.key], sub)
	if len(h.subs[sub.key]) == 0 {
		delete(h.subs, sub.key)
	}
	if h.nsubs--; h.nsubs == 0 {
		h.cancel()
		h.cancel = nil
		h.gen++
		clear(h.byAccount)
		h.order = nil
	}
}

// read is the reader: at each kick it reads the events after the window's tail, appends them and
// wakes the streams that watch them. A failed read is retried with backoff (an unreachable database
// delays the streams; it never ends them).
func (h *EventHub) read(ctx context.Context, gen int) {
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		for {
			h.mu.Lock()
			tail := h.tail
			h.mu.Unlock()
			es, err := h.st.EventsSince(ctx, tail, hubBatch)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				h.log.Warn("reading events for WatchEvents streams; retrying", "err", err, "in", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				backoff = min(2*backoff, watchRetryMax)
				continue
			}
			backoff = 50 * time.Millisecond
			h.append(gen, es)
			if len(es) < hubBatch {
				break
			}
		}
	}
}

// watchRetryMax bounds the reader's backoff.
const watchRetryMax = 5 * time.Second

// append adds events read after the tail to the window and wakes the streams that watch them.
func (h *EventHub) append(gen int, es []store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen || len(es) == 0 {
		return
	}
	woken := map[subKey]struct{}{}
	for _, e := range es {
		if e.ID <= h.tail {
			continue
		}
		h.byAccount[e.AccountID] = append(h.byAccount[e.AccountID], &hubEvent{Event: e})
		h.order = append(h.order, e.AccountID)
		h.tail = e.ID
		woken[subKey{e.AccountID, ""}] = struct{}{}
		woken[subKey{e.AccountID, e.BundleID}] = struct{}{}
	}
	if drop := len(h.order) - h.window; drop > 0 {
		for _, a := range h.order[:drop] {
			l := h.byAccount[a]
			h.start = l[0].ID
			if len(l) == 1 {
				delete(h.byAccount, a)
			} else {
				h.byAccount[a] = l[1:]
			}
		}
		h.order = append(h.order[:0], h.order[drop:]...)
	}
	for k := range woken {
		for sub := range h.subs[k] {
			select {
			case sub.wake <- struct{}{}:
			default:
			}
		}
	}
}

// after returns up to limit events of the account (and bundle, when given) after the cursor from
// the window, and the id the stream has then seen everything up to (the window's tail when fewer
// than limit came, so a stream of a quiet bundle does not fall behind the window); ok is false
// when the cursor is older than the window, and the stream reads the store.
func (h *EventHub) after(account, bundleID string, cursor int64, limit int) (es []*hubEvent, upTo int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cursor < h.start {
		return nil, cursor, false
	}
	l := h.byAccount[account]
	i := sort.Search(len(l), func(i int) bool { return l[i].ID > cursor })
	for _, e := range l[i:] {
		if len(es) == limit {
			break
		}
		if bundleID == "" || e.BundleID == bundleID {
			es = append(es, e)
		}
	}
	if len(es) == limit {
		return es, es[len(es)-1].ID, true
	}
	return es, max(cursor, h.tail), true
}

// FollowCommits wakes n's streams when another process commits events: replicas of the service
// on one database each commit their own events (and notify their own streams), so each replica
// also looks at the newest event id every `every` and notifies when it moved. A stream on replica B
// thus receives an event committed by replica A within `every` plus a read. It returns when ctx
// ends; a failed read is retried at the next look.
func FollowCommits(ctx context.Context, st *store.Store, n *EventHub, every time.Duration) {
	last, _ := st.LastEventID(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id, err := st.LastEventID(ctx)
		if err == nil && id != last {
			last = id
			n.Notify()
		}
	}
}

// FollowInterval is how often FollowCommits looks.
const FollowInterval = 250 * time.Millisecond

// WatchStartHeader is the response header of WatchEvents holding the event id the stream starts
// after; once a client has it, every event committed later reaches the stream.
const WatchStartHeader = "certhosting-watch-start"

// watchBatch is how many events WatchEvents sends per look.
const watchBatch = 200

// WatchEvents implements LifecycleService.WatchEvents: the account's events, from the cursor on,
// then each new one as it is committed. Event ids increase in commit order (they are allocated
// inside the writing transaction), so resuming after the last id seen misses nothing.
func (s *Server) WatchEvents(req *lifecyclev1.WatchEventsRequest, stream lifecyclev1.LifecycleService_WatchEventsServer) error {
	ctx := stream.Context()
	who, err := caller(ctx)
	if err != nil {
		return err
	}
	if req.GetBundleId() != "" {
		if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
			return err
		}
		if !who.Sees(req.GetBundleId()) {
			return apierr.NotFound("bundle", req.GetBundleId())
		}
		if _, _, err := s.Store.GetBundle(ctx, who.AccountID, req.GetBundleId()); err != nil {
			return err
		}
	}
	var cursor int64
	if req.GetAfterEventId() == "" {
		if cursor, err = s.Store.LastEventID(ctx); err != nil {
			return err
		}
	} else if cursor, err = strconv.ParseInt(req.GetAfterEventId(), 10, 64); err != nil || cursor < 0 {
		return apierr.InvalidArgument("after_event_id", "must be an event_id (a non-negative integer) or empty, got %q", req.GetAfterEventId())
	}
	// The response headers say where the stream starts: a client that must not miss a change it
	// makes right after opening the stream waits for them before making it.
	if err := stream.SendHeader(metadata.Pairs(WatchStartHeader, strconv.FormatInt(cursor, 10))); err != nil {
		return err
	}
	sub, err := s.events.subscribe(ctx, who.AccountID, req.GetBundleId())
	if err != nil {
		return err
	}
	defer s.events.unsubscribe(sub)
	for {
		es, upTo, ok := s.events.after(who.AccountID, req.GetBundleId(), cursor, watchBatch)
		if !ok {
			stored, err := s.Store.EventsAfter(ctx, who.AccountID, req.GetBundleId(), cursor, watchBatch)
			if err != nil {
				return err
			}
			es, upTo = make([]*hubEvent, len(stored)), cursor
			for i, e := range stored {
				es[i] = &hubEvent{Event: e}
			}
		}
		for _, e := range es {
			if !who.Sees(e.BundleID) {
				cursor = e.ID // a key limited to bundles sees only theirs
				continue
			}
			if err := stream.SendMsg(e.message(stream)); err != nil {
				return err
			}
			cursor = e.ID
		}
		cursor = max(cursor, upTo)
		if len(es) == watchBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
	}
}
