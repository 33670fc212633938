package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
)

// streamTimeout bounds every stream of these tests: a stream the server never ends fails the
// test with DeadlineExceeded instead of hanging it.
const streamTimeout = 20 * time.Second

// holder is a LifecycleService whose WatchEvents sends a header (so the client knows the stream
// is open and counted), then holds the stream until its context ends, and returns nil as the real
// WatchEvents does. Bundle "panic" panics instead.
type holder struct {
	lifecyclev1.UnimplementedLifecycleServiceServer
}

func (holder) WatchEvents(req *lifecyclev1.WatchEventsRequest, stream lifecyclev1.LifecycleService_WatchEventsServer) error {
	if req.GetBundleId() == "panic" {
		panic("handler panicked")
	}
	if err := stream.SendHeader(metadata.Pairs("open", "yes")); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

var streamPolicy = auth.Policy{lifecyclev1.LifecycleService_WatchEvents_FullMethodName: auth.Allow(auth.RoleOwner)}

type streamEnv struct {
	st    *auth.Store
	clk   *clockwork.FakeClock
	authn *auth.Interceptor
	srv   *grpctest.Server
}

func newStreamEnv(t *testing.T, ttl time.Duration, l auth.Limits) *streamEnv {
	t.Helper()
	st, clk := newStore(t, dbtest.FromEnv(t))
	authn := auth.NewInterceptor(auth.NewVerifier(st, clk, ttl), streamPolicy, l)
	srv := grpctest.Start(t, authn, func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, holder{}) })
	return &streamEnv{st: st, clk: clk, authn: authn, srv: srv}
}

// open opens a stream with key (on a connection of its own) and waits until the server has it
// open. It returns the stream and its cancel, or the status that refused it.
func (e *streamEnv) open(t *testing.T, key, bundle string) (grpc.ServerStreamingClient[lifecyclev1.WatchEventsResponse], context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	t.Cleanup(cancel)
	s, err := lifecyclev1.NewLifecycleServiceClient(e.srv.Dial(t, key)).WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{BundleId: bundle})
	if err != nil {
		return nil, cancel, err
	}
	if md, err := s.Header(); err == nil && len(md.Get("open")) == 1 {
		return s, cancel, nil
	}
	_, err = s.Recv() // refused: the status
	if err == nil {
		t.Fatal("stream sent a message without its header")
	}
	return nil, cancel, err
}

// wantRevoked fails the test unless err, the end of a stream, is auth.ErrKeyRevoked.
func wantRevoked(t *testing.T, what string, err error) {
	t.Helper()
	want := status.Convert(auth.ErrKeyRevoked)
	if got := status.Convert(err); got.Code() != want.Code() || got.Message() != want.Message() {
		t.Errorf("%s ended with %v, want %v", what, err, auth.ErrKeyRevoked)
	}
}

// wantOpen fails the test unless the interceptor counts streams open streams on keys keys.
func wantOpen(t *testing.T, authn *auth.Interceptor, streams, keys int) {
	t.Helper()
	if s, k := authn.OpenStreams(); s != streams || k != keys {
		t.Errorf("open streams = %d on %d keys, want %d on %d", s, k, streams, keys)
	}
}

// A real stream whose key is revoked ends with Unauthenticated once the TTL passes (the loop's
// ticker on the verifier's clock); the streams of the account's other key, and of another
// account, stay open.
func TestStreamEndsWhenKeyRevoked(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	e := newStreamEnv(t, ttl, auth.Limits{})
	a := grpctest.NewCaller(t, e.st, "a", auth.RoleOwner)
	b := grpctest.NewCaller(t, e.st, "b", auth.RoleOwner)
	_, a2, err := e.st.CreateKey(context.Background(), a.AccountID, auth.RoleOwner, "a's second key")
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, err := e.open(t, a.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	// Two streams on the revoked key, to see both end on one lookup.
	revoked2, _, err := e.open(t, a.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{a2, b.Key} {
		if _, _, err := e.open(t, key, ""); err != nil {
			t.Fatal(err)
		}
	}
	wantOpen(t, e.authn, 4, 3)

	if err := e.st.RevokeKey(context.Background(), a.KeyID); err != nil {
		t.Fatal(err)
	}
	// The loop's ticker exists since the first stream opened, so advancing fires it.
	e.clk.Advance(ttl)
	_, err = revoked.Recv()
	wantRevoked(t, "stream on the revoked key", err)
	_, err = revoked2.Recv()
	wantRevoked(t, "second stream on the revoked key", err)
	// A stream leaves the registry before its status is sent, so the count is exact here; and a
	// pass over the remaining keys leaves them open.
	wantOpen(t, e.authn, 2, 2)
	e.authn.RecheckStreams(context.Background())
	wantOpen(t, e.authn, 2, 2)
	// The revoked key can open nothing new.
	if _, _, err := e.open(t, a.Key, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("open with the revoked key = %v, want Unauthenticated", err)
	}
}

// One pass of the re-verification, by what the store says about the key: only a definite refusal
// ends the stream; a store that cannot be read is no verdict.
func TestStreamRecheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(st *auth.Store, c grpctest.Caller) error
		ended  bool
	}{
		{"valid key", func(*auth.Store, grpctest.Caller) error { return nil }, false},
		{"revoked key", func(st *auth.Store, c grpctest.Caller) error { return st.RevokeKey(context.Background(), c.KeyID) }, true},
		{"store unreachable", func(st *auth.Store, _ grpctest.Caller) error { return st.Close() }, false},
	}
	const method = "/test.v1.Test/Watch"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, clk := newStore(t, dbtest.FromEnv(t))
			c := grpctest.NewCaller(t, st, "customer", auth.RoleOwner)
			authn := auth.NewInterceptor(auth.NewVerifier(st, clk, time.Minute), auth.Policy{method: auth.Allow(auth.RoleOwner)}, auth.Limits{})
			ctx, cancel := context.WithCancel(metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+c.Key)))
			defer cancel()
			handlerCtx := make(chan context.Context, 1)
			result := make(chan error, 1)
			var sendErr error // a send after the stream ended, if the key was refused
			go func() {
				result <- authn.Stream()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method}, func(_ any, ss grpc.ServerStream) error {
					handlerCtx <- ss.Context()
					<-ss.Context().Done()
					if errors.Is(context.Cause(ss.Context()), auth.ErrKeyRevoked) {
						sendErr = ss.SendMsg(&lifecyclev1.WatchEventsResponse{})
					}
					return nil
				})
			}()
			hctx := <-handlerCtx
			if err := tc.before(st, c); err != nil {
				t.Fatal(err)
			}
			authn.RecheckStreams(context.Background())
			if !tc.ended {
				// Cancellation is synchronous within the pass: had it ended the stream, the
				// handler's context would be done by now.
				if hctx.Err() != nil {
					t.Fatalf("the pass ended the stream (%v)", context.Cause(hctx))
				}
				cancel() // the client goes away
			}
			err := <-result
			switch {
			case tc.ended:
				wantRevoked(t, "stream", err)
				wantRevoked(t, "a send once the key was refused", sendErr)
			case err != nil:
				t.Errorf("stream the client closed ended with %v, want the handler's nil", err)
			}
			wantOpen(t, authn, 0, 0)
		})
	}
}

// The stream that would pass an account's cap is refused with ResourceExhausted naming the
// account and the cap; other accounts are not affected; a stream that ends (by a panic too) frees
// its place.
func TestStreamCapPerAccount(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t, time.Minute, auth.Limits{StreamsPerAccount: 2})
	a := grpctest.NewCaller(t, e.st, "a", auth.RoleOwner)
	b := grpctest.NewCaller(t, e.st, "b", auth.RoleOwner)

	if _, _, err := e.open(t, a.Key, "panic"); status.Code(err) != codes.Internal {
		t.Fatalf("panicking stream = %v, want Internal", err)
	}
	wantOpen(t, e.authn, 0, 0)
	_, closeFirst, err := e.open(t, a.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.open(t, a.Key, ""); err != nil {
		t.Fatalf("second stream (the panicked one must not count): %v", err)
	}
	_, _, err = e.open(t, a.Key, "")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted ||
		!strings.Contains(st.Message(), a.AccountID) || !strings.Contains(st.Message(), "2 streams") {
		t.Fatalf("third stream = %v, want ResourceExhausted naming %s and the cap of 2", err, a.AccountID)
	}
	if _, _, err := e.open(t, b.Key, ""); err != nil {
		t.Fatalf("another account's stream: %v", err)
	}
	wantOpen(t, e.authn, 3, 2)

	closeFirst()
	// The server learns of the cancel asynchronously; wait for the count, not for a time.
	deadline := time.Now().Add(streamTimeout)
	for s, _ := e.authn.OpenStreams(); s != 2; s, _ = e.authn.OpenStreams() {
		if time.Now().After(deadline) {
			t.Fatalf("open streams = %d %s after the client closed one, want 2", s, streamTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := e.open(t, a.Key, ""); err != nil {
		t.Errorf("stream after one closed: %v", err)
	}
}

// With no cap (0), an account opens as many streams as it likes.
func TestStreamNoCap(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t, time.Minute, auth.Limits{})
	a := grpctest.NewCaller(t, e.st, "a", auth.RoleOwner)
	for i := range auth.DefaultStreamsPerAccount + 1 {
		if _, _, err := e.open(t, a.Key, ""); err != nil {
			t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	wantOpen(t, e.authn, auth.DefaultStreamsPerAccount+1, 1)
}
