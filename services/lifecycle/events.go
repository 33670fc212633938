package lifecycle

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Notifier wakes every WatchEvents stream when events are committed. It is a broadcast: Wait
// returns a channel that Notify closes (and replaces), so any number of streams wait on it
// without registering.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewNotifier makes a notifier.
func NewNotifier() *Notifier { return &Notifier{ch: make(chan struct{})} }

// Notify wakes the current waiters. It never blocks.
func (n *Notifier) Notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// Wait returns a channel closed at the next Notify. Take it before reading, so an event committed
// between the read and the wait is not missed.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// FollowCommits wakes n's streams when another process commits events: replicas of the service
// on one database each commit their own events (and notify their own streams), so each replica
// also looks at the newest event id every `every` and notifies when it moved. A stream on replica B
// thus receives an event committed by replica A within `every` plus a read. It returns when ctx
// ends; a failed read is retried at the next look (the streams' own poll is the safety net).
func FollowCommits(ctx context.Context, st *store.Store, n *Notifier, every time.Duration) {
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

// watchBatch is how many events WatchEvents reads at a time; watchPoll is how often it looks
// even without a notification (a safety net; notifications carry the latency).
const (
	watchBatch = 200
	watchPoll  = 5 * time.Second
)

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
	for {
		wake := s.events.Wait()
		es, err := s.Store.EventsAfter(ctx, who.AccountID, req.GetBundleId(), cursor, watchBatch)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !who.Sees(e.BundleID) {
				cursor = e.ID // a key limited to bundles sees only theirs
				continue
			}
			if err := stream.Send(&lifecyclev1.WatchEventsResponse{Event: eventProto(e)}); err != nil {
				return err
			}
			cursor = e.ID
		}
		if len(es) == watchBatch {
			continue
		}
		timer := s.Clock.NewTimer(watchPoll)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-wake:
		case <-timer.Chan():
		}
		timer.Stop()
	}
}
