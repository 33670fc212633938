package lifecycle_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/services/lifecycle"
)

// watchTimeout bounds every WatchEvents stream of a test: an event that never comes ends the
// stream with DeadlineExceeded and fails the test instead of hanging it.
const watchTimeout = 20 * time.Second

// watcher is an open WatchEvents stream.
type watcher struct {
	t      *testing.T
	stream grpc.ServerStreamingClient[lifecyclev1.WatchEventsResponse]
	cancel context.CancelFunc
	last   int64 // event_id of the last event received (or the one the stream started after)
}

// watch opens a WatchEvents stream as client c. It ends with cancel, with the test, or after
// watchTimeout.
func (e *env) watch(c lifecyclev1.LifecycleServiceClient, afterEventID, bundleID string) *watcher {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, watchTimeout)
	e.t.Cleanup(cancel)
	s, err := c.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{AfterEventId: afterEventID, BundleId: bundleID})
	if err != nil {
		e.t.Fatalf("WatchEvents: %v", err)
	}
	// The headers say where the stream starts; once they are here, every later change reaches it.
	md, err := s.Header()
	if err != nil {
		e.t.Fatalf("WatchEvents headers: %v", err)
	}
	startAt := md.Get(lifecycle.WatchStartHeader)
	if len(startAt) != 1 {
		e.t.Fatalf("WatchEvents headers %v lack %s", md, lifecycle.WatchStartHeader)
	}
	last, err := strconv.ParseInt(startAt[0], 10, 64)
	if err != nil {
		e.t.Fatalf("%s = %q: %v", lifecycle.WatchStartHeader, startAt[0], err)
	}
	if afterEventID != "" {
		if want, _ := strconv.ParseInt(afterEventID, 10, 64); last != want {
			e.t.Fatalf("%s = %d, want the requested cursor %d", lifecycle.WatchStartHeader, last, want)
		}
	}
	return &watcher{t: e.t, stream: s, cancel: cancel, last: last}
}

// next receives the next n events and fails the test unless their ids increase strictly.
func (w *watcher) next(n int) []*lifecyclev1.LifecycleEvent {
	w.t.Helper()
	out := make([]*lifecyclev1.LifecycleEvent, 0, n)
	for i := range n {
		resp, err := w.stream.Recv()
		if err != nil {
			w.t.Fatalf("receiving event %d of %d after event %d: %v", i+1, n, w.last, err)
		}
		ev := resp.GetEvent()
		if id := eventID(ev); id <= w.last {
			w.t.Fatalf("event_id %q after %d: want increasing integers", ev.GetEventId(), w.last)
		}
		w.last = eventID(ev)
		out = append(out, ev)
	}
	return out
}

func eventTypes(evs []*lifecyclev1.LifecycleEvent) []lifecyclev1.EventType {
	out := make([]lifecyclev1.EventType, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.GetType())
	}
	return out
}

// eventID is an event's id as a number (0, which no event has, when it is not one).
func eventID(ev *lifecyclev1.LifecycleEvent) int64 {
	id, _ := strconv.ParseInt(ev.GetEventId(), 10, 64)
	return id
}

func eventIDs(evs []*lifecyclev1.LifecycleEvent) []int64 {
	out := make([]int64, 0, len(evs))
	for _, ev := range evs {
		out = append(out, eventID(ev))
	}
	return out
}

// ofBundle fails the test unless every event is of bundle.
func ofBundle(t *testing.T, evs []*lifecyclev1.LifecycleEvent, bundle string) {
	t.Helper()
	for _, ev := range evs {
		if ev.GetBundleId() != bundle {
			t.Errorf("event %s (%s) is of bundle %s, want %s", ev.GetEventId(), ev.GetType(), ev.GetBundleId(), bundle)
		}
	}
}

var (
	evCreated   = lifecyclev1.EventType_EVENT_TYPE_CREATED
	evSubmitted = lifecyclev1.EventType_EVENT_TYPE_APPLICATION_SUBMITTED
	evIssued    = lifecyclev1.EventType_EVENT_TYPE_ISSUED
	evHosted    = lifecyclev1.EventType_EVENT_TYPE_HOSTED
)

// TestWatchEvents: from "0" a stream replays the account's history in order, then delivers each
// event as it is committed; a client that reconnects after the last id it saw gets exactly the
// events it missed; another account's stream never sees them.
func TestWatchEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, records := e.hostedDV()
	first := b.GetCertificates()[0].GetCertificateId()
	a := e.watch(e.a, "0", "")
	other := e.watch(e.b, "0", "")

	got := a.next(4)
	if want := []lifecyclev1.EventType{evCreated, evCreated, evCreated, evSubmitted}; !slices.Equal(eventTypes(got), want) {
		t.Errorf("history replayed as %v, want %v", eventTypes(got), want)
	}
	ofBundle(t, got, b.GetBundleId())

	e.publish(records)
	e.tick()
	got = a.next(2)
	if want := []lifecyclev1.EventType{evIssued, evHosted}; !slices.Equal(eventTypes(got), want) {
		t.Errorf("after issuance the stream delivered %v, want %v", eventTypes(got), want)
	}
	for _, ev := range got {
		if ev.GetCertificateId() != first || ev.GetActor() != lifecyclev1.Actor_ACTOR_TICKER {
			t.Errorf("event %v, want the ticker's, about instance 1", ev)
		}
	}
	if hosted := got[len(got)-1]; hosted.GetFromState() != stValidating || hosted.GetToState() != stHosted {
		t.Errorf("HOSTED event goes %s → %s, want VALIDATING → HOSTED", hosted.GetFromState(), hosted.GetToState())
	}

	// B's stream, open all along, starts with B's own first events.
	bb := e.create(t, e.accB, 2, false)
	ofBundle(t, other.next(2), bb.GetBundleId())

	// A disconnects; what happens meanwhile is delivered on resumption, once, with no gap.
	a.cancel()
	seen := a.last
	newest, err := e.st.LastEventID(e.ctx) // B's events came after A's last one
	if err != nil {
		t.Fatal(err)
	}
	nb := e.create(t, e.accA, 2, false)
	e.submit(application(nb.GetCertificates()[0].GetCertificateId(), "www.example.com"))
	resumed := e.watch(e.a, strconv.FormatInt(seen, 10), "")
	got = resumed.next(3)
	if want := []lifecyclev1.EventType{evCreated, evCreated, evSubmitted}; !slices.Equal(eventTypes(got), want) {
		t.Errorf("resumed stream delivered %v, want %v", eventTypes(got), want)
	}
	ofBundle(t, got, nb.GetBundleId())
	if ids := eventIDs(got); !slices.Equal(ids, []int64{newest + 1, newest + 2, newest + 3}) {
		t.Errorf("missed events have ids %v, want every id since the disconnection, %d to %d", ids, newest+1, newest+3)
	}
	// What comes next is the next change, not a repeat.
	last := e.create(t, e.accA, 1, false)
	got = resumed.next(1)
	ofBundle(t, got, last.GetBundleId())
	if resumed.last != newest+4 {
		t.Errorf("next event id %d, want %d", resumed.last, newest+4)
	}

	// B's stream skipped every event of A's.
	bb = e.create(t, e.accB, 1, false)
	ofBundle(t, other.next(1), bb.GetBundleId())
}

// TestWatchEventsNewOnly: with no after_event_id the stream starts at the newest event.
func TestWatchEventsNewOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.create(t, e.accA, 2, false)
	w := e.watch(e.a, "", "")
	cert := b.GetCertificates()[0].GetCertificateId()
	e.submit(application(cert, "shop.example.com"))
	if ev := w.next(1)[0]; ev.GetType() != evSubmitted || ev.GetCertificateId() != cert {
		t.Errorf("first event %v, want the application just submitted (not the history before the stream)", ev)
	}
}

// TestWatchEventsSharedMessage: streams of one account receive the same events, each message
// whole, though the service encodes each event once for all of them (a stream on the whole account,
// one on the bundle, and one opened from "0" that reads its history from the store and then joins).
func TestWatchEventsSharedMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.create(t, e.accA, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	all, one := e.watch(e.a, "", ""), e.watch(e.a, "", b.GetBundleId())
	e.submit(application(cert, "shop.example.com"))
	got := [][]*lifecyclev1.LifecycleEvent{all.next(1), one.next(1)}
	replay := e.watch(e.a, "0", "")
	for {
		ev := replay.next(1)
		if ev[0].GetEventId() == got[0][0].GetEventId() {
			got = append(got, ev)
			break
		}
	}
	for i, evs := range got {
		if ev := evs[0]; ev.GetType() != evSubmitted || ev.GetCertificateId() != cert || ev.GetBundleId() != b.GetBundleId() ||
			ev.GetTime() == nil || ev.GetToState() == lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED {
			t.Errorf("stream %d: %v, want the application submitted, whole", i, ev)
		}
		if !proto.Equal(evs[0], got[0][0]) {
			t.Errorf("stream %d received %v, stream 0 %v", i, evs[0], got[0][0])
		}
	}
}

// TestWatchEventsBundleFilter: with bundle_id the stream holds that bundle's events only.
func TestWatchEventsBundleFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	x, records := e.hostedDV()
	y := e.create(t, e.accA, 1, false)
	w := e.watch(e.a, "0", x.GetBundleId())
	ofBundle(t, w.next(4), x.GetBundleId())

	e.submit(application(y.GetCertificates()[0].GetCertificateId(), "www.example.com"))
	e.publish(records)
	e.tick()
	got := w.next(2)
	ofBundle(t, got, x.GetBundleId())
	if want := []lifecyclev1.EventType{evIssued, evHosted}; !slices.Equal(eventTypes(got), want) {
		t.Errorf("filtered stream delivered %v, want %v", eventTypes(got), want)
	}
}

func TestWatchEventsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bundleB := e.create(t, e.accB, 1, false).GetBundleId()
	tests := []struct {
		name   string
		client lifecyclev1.LifecycleServiceClient
		req    *lifecyclev1.WatchEventsRequest
		code   codes.Code
		field  string
	}{
		{"after_event_id not a number", e.a, &lifecyclev1.WatchEventsRequest{AfterEventId: "x"}, codes.InvalidArgument, "after_event_id"},
		{"negative after_event_id", e.a, &lifecyclev1.WatchEventsRequest{AfterEventId: "-1"}, codes.InvalidArgument, "after_event_id"},
		{"malformed bundle_id", e.a, &lifecyclev1.WatchEventsRequest{BundleId: "bdl_1"}, codes.InvalidArgument, "bundle_id"},
		{"another account's bundle", e.a, &lifecyclev1.WatchEventsRequest{BundleId: bundleB}, codes.NotFound, ""},
		{"support engineer", lifecyclev1.NewLifecycleServiceClient(e.supportConn), &lifecyclev1.WatchEventsRequest{}, codes.PermissionDenied, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(e.ctx, watchTimeout)
			defer cancel()
			stream, err := tc.client.WatchEvents(ctx, tc.req)
			if err == nil {
				_, err = stream.Recv()
			}
			if tc.code == codes.InvalidArgument {
				grpctest.WantInvalidArgument(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("WatchEvents = %v, want %s", err, tc.code)
			}
		})
	}
}
