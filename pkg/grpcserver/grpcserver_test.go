package grpcserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jonboulle/clockwork"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/grpcserver"
)

// faulty is a LifecycleService whose GetBundle fails in the way its bundle_id names, and whose
// ListBundles blocks until release is closed (after telling entered).
type faulty struct {
	lifecyclev1.UnimplementedLifecycleServiceServer
	entered chan struct{}
	release chan struct{}
}

func (faulty) GetBundle(ctx context.Context, req *lifecyclev1.GetBundleRequest) (*lifecyclev1.GetBundleResponse, error) {
	switch req.GetBundleId() {
	case "ok":
		return &lifecyclev1.GetBundleResponse{}, nil
	case "internal":
		return nil, fmt.Errorf("query /srv/secret/lifecycle.db: %w", errors.New("database is locked"))
	case "panic":
		panic("nil map")
	case "client":
		return nil, apierr.NotFound("bundle", "bdl_x")
	case "status":
		return nil, status.Error(codes.Unavailable, "dependency down")
	case "unknown status":
		return nil, status.Error(codes.Unknown, "mystery at /srv/secret")
	case "canceled":
		return nil, fmt.Errorf("read: %w", context.Canceled)
	case "deadline":
		return nil, fmt.Errorf("read: %w", context.DeadlineExceeded)
	case "database down":
		return nil, fmt.Errorf("db: begin: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"})
	case "database unreachable":
		return nil, fmt.Errorf("db: begin: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	case "lost race":
		return nil, fmt.Errorf("db: commit: %w", &pgconn.PgError{Code: "40001", Message: "could not serialize access"})
	}
	return nil, errors.New("unexpected bundle_id")
}

// WatchEvents sends nothing and ends, with no error, when its stream's context does.
func (faulty) WatchEvents(_ *lifecyclev1.WatchEventsRequest, stream lifecyclev1.LifecycleService_WatchEventsServer) error {
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (f faulty) ListBundles(ctx context.Context, _ *lifecyclev1.ListBundlesRequest) (*lifecyclev1.ListBundlesResponse, error) {
	close(f.entered)
	<-f.release
	return &lifecyclev1.ListBundlesResponse{}, nil
}

var policy = auth.Policy{
	lifecyclev1.LifecycleService_GetBundle_FullMethodName:   auth.Allow(auth.RoleOwner),
	lifecyclev1.LifecycleService_ListBundles_FullMethodName: auth.Allow(auth.RoleOwner),
	lifecyclev1.LifecycleService_WatchEvents_FullMethodName: auth.Allow(auth.RoleOwner),
}

// newAuth is an interceptor over a fresh identity store, and a customer key it accepts.
func newAuth(t *testing.T) (*auth.Interceptor, string) {
	t.Helper()
	clk := clockwork.NewFakeClock()
	st := grpctest.OpenIdentity(t, clk)
	c := grpctest.NewCaller(t, st, "acme", auth.RoleOwner)
	return auth.NewInterceptor(auth.NewVerifier(st, clk, time.Minute), policy, auth.Limits{}), c.Key
}

// Errors that carry a status pass through; context errors become their codes; anything else,
// panics included, reaches the client as a bare Internal with no detail.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	authn, key := newAuth(t)
	srv := grpctest.Start(t, authn, func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, faulty{}) })
	client := lifecyclev1.NewLifecycleServiceClient(srv.Dial(t, key))
	tests := []struct {
		bundleID string
		code     codes.Code
		msg      string
	}{
		{"ok", codes.OK, ""},
		{"internal", codes.Internal, "internal error"},
		{"panic", codes.Internal, "internal error"},
		{"client", codes.NotFound, `bundle "bdl_x" not found`},
		{"status", codes.Unavailable, "dependency down"},
		{"unknown status", codes.Internal, "internal error"},
		{"canceled", codes.Canceled, "call cancelled"},
		{"deadline", codes.DeadlineExceeded, "deadline exceeded"},
		{"database down", codes.Unavailable, "the database is unavailable; try again"},
		{"database unreachable", codes.Unavailable, "the database is unavailable; try again"},
		{"lost race", codes.Aborted, "a concurrent change got there first; try again"},
	}
	for _, tc := range tests {
		t.Run(tc.bundleID, func(t *testing.T) {
			t.Parallel()
			_, err := client.GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{BundleId: tc.bundleID})
			st := status.Convert(err)
			if st.Code() != tc.code || st.Message() != tc.msg {
				t.Errorf("got %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
	// The server survived the panic.
	if _, err := client.GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{BundleId: "ok"}); err != nil {
		t.Errorf("call after the panic: %v", err)
	}
}

func TestMaxRecvMsgSize(t *testing.T) {
	t.Parallel()
	authn, key := newAuth(t)
	srv := grpctest.Start(t, authn, func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, faulty{}) })
	client := lifecyclev1.NewLifecycleServiceClient(srv.Dial(t, key))
	_, err := client.GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{BundleId: strings.Repeat("x", grpcserver.MaxRecvMsgSize)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized request = %v, want ResourceExhausted", err)
	}
}

// runOnLoopback serves s on a loopback port through Run, as main does.
func runOnLoopback(t *testing.T, s *grpcserver.Server, grace time.Duration) (conn *grpc.ClientConn, stop context.CancelFunc, stopped <-chan error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx, lis, grace) }()
	t.Cleanup(func() { cancel(); s.GRPC.Stop() })
	conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, cancel, errc
}

// callInProgress starts a ListBundles call and returns once the handler is running; the call's
// result arrives on the channel when f.release is closed (or the server cuts it off).
func (f faulty) callInProgress(conn *grpc.ClientConn, key string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := lifecyclev1.NewLifecycleServiceClient(conn).ListBundles(context.Background(), &lifecyclev1.ListBundlesRequest{},
			grpc.PerRPCCredentials(auth.BearerCredentials(key)))
		done <- err
	}()
	<-f.entered
	return done
}

// On shutdown, Run reports NOT_SERVING to health watchers first, lets the call in progress
// finish, and returns nil.
func TestRunGracefulShutdown(t *testing.T) {
	t.Parallel()
	authn, key := newAuth(t)
	s := grpcserver.New(grpctest.Logger(t), authn, grpcserver.Options{})
	f := faulty{entered: make(chan struct{}), release: make(chan struct{})}
	lifecyclev1.RegisterLifecycleServiceServer(s.GRPC, f)
	conn, stop, stopped := runOnLoopback(t, s, time.Minute)

	watchCtx, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	watch, err := healthpb.NewHealthClient(conn).Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health before shutdown: %v, %v; want SERVING", r, err)
	}

	events, err := lifecyclev1.NewLifecycleServiceClient(conn).WatchEvents(watchCtx, &lifecyclev1.WatchEventsRequest{},
		grpc.PerRPCCredentials(auth.BearerCredentials(key)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.Header(); err != nil {
		t.Fatalf("WatchEvents headers: %v", err)
	}

	callDone := f.callInProgress(conn, key)
	stop()
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health after shutdown began: %v, %v; want NOT_SERVING", r, err)
	}
	// Streams end at once, with a status that says to reconnect; they do not hold the shutdown
	// until the grace period (a minute here) cuts them off.
	_, err = watch.Recv()
	grpctest.WantShuttingDown(t, "health Watch", err)
	_, err = events.Recv()
	grpctest.WantShuttingDown(t, "WatchEvents", err)
	close(f.release)
	if err := <-callDone; err != nil {
		t.Errorf("call in progress at shutdown: %v, want it to finish", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// Health answers for the whole server and for each registered service by name, and only for those.
func TestHealthPerService(t *testing.T) {
	t.Parallel()
	authn, _ := newAuth(t)
	s := grpcserver.New(grpctest.Logger(t), authn, grpcserver.Options{})
	lifecyclev1.RegisterLifecycleServiceServer(s.GRPC, faulty{})
	conn, stop, stopped := runOnLoopback(t, s, time.Minute)
	health := healthpb.NewHealthClient(conn)
	for _, tc := range []struct {
		service string
		code    codes.Code
	}{
		{"", codes.OK},
		{lifecyclev1.LifecycleService_ServiceDesc.ServiceName, codes.OK},
		{"grpc.health.v1.Health", codes.OK},
		{"certhosting.order.v1.OrderService", codes.NotFound},
	} {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: tc.service})
		if status.Code(err) != tc.code || (err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING) {
			t.Errorf("Check(%q) = %v, %v; want %s and SERVING", tc.service, resp, err, tc.code)
		}
	}
	watch, err := health.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: lifecyclev1.LifecycleService_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watching the service: %v, %v; want SERVING", r, err)
	}
	unknown, err := health.Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := unknown.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("watching an unknown service: %v, %v; want SERVICE_UNKNOWN", r, err)
	}
	stop()
	if r, err := watch.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("the service after shutdown began: %v, %v; want NOT_SERVING", r, err)
	}
	_, err = watch.Recv()
	grpctest.WantShuttingDown(t, "health Watch of the service", err)
	_, err = unknown.Recv()
	grpctest.WantShuttingDown(t, "health Watch of an unknown service", err)
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// A call that outlives the grace period is cut off, and Run still returns.
func TestRunGraceExpires(t *testing.T) {
	t.Parallel()
	authn, key := newAuth(t)
	s := grpcserver.New(grpctest.Logger(t), authn, grpcserver.Options{})
	f := faulty{entered: make(chan struct{}), release: make(chan struct{})}
	defer close(f.release)
	lifecyclev1.RegisterLifecycleServiceServer(s.GRPC, f)
	conn, stop, stopped := runOnLoopback(t, s, 50*time.Millisecond)
	callDone := f.callInProgress(conn, key)
	stop()
	if err := <-stopped; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if err := <-callDone; status.Code(err) != codes.Unavailable {
		t.Errorf("call cut off at shutdown = %v, want Unavailable", err)
	}
}

// MaxConcurrentStreams caps the calls open at once on one connection. A grpc-go client does not
// get an error past it: the call waits, client-side, for one to end (or its deadline); unary calls
// share the cap with streams; another connection has its own.
func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	authn, _ := newAuth(t)
	srv := grpctest.StartWith(t, authn, grpcserver.Options{MaxConcurrentStreams: 2}, func(*grpc.Server) {})
	health := healthpb.NewHealthClient(srv.Dial(t, ""))
	watch := func(ctx context.Context) error {
		w, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		_, err = w.Recv()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, closeFirst := context.WithCancel(ctx)
	for _, c := range []context.Context{first, ctx} {
		if err := watch(c); err != nil {
			t.Fatal(err)
		}
	}
	queued := func(what string, call func(context.Context) error) {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := call(c); status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s past the cap = %v, want it queued until its deadline (DeadlineExceeded)", what, err)
		}
	}
	queued("third Watch", watch)
	queued("unary Check", func(c context.Context) error {
		_, err := health.Check(c, &healthpb.HealthCheckRequest{})
		return err
	})
	other := healthpb.NewHealthClient(srv.Dial(t, ""))
	if _, err := other.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check on another connection: %v", err)
	}
	// Once one stream ends, a waiting call goes through.
	closeFirst()
	c, cancelCheck := context.WithTimeout(ctx, 20*time.Second)
	defer cancelCheck()
	if _, err := health.Check(c, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check after a stream ended: %v", err)
	}
}

// A client that ignores the announced cap, opening more streams than it allows, has the extra
// stream reset with REFUSED_STREAM (which gRPC maps to UNAVAILABLE). Spoken in raw HTTP/2: a
// grpc-go client never does it.
func TestMaxConcurrentStreamsRefusesRawClient(t *testing.T) {
	t.Parallel()
	authn, _ := newAuth(t)
	s := grpcserver.New(grpctest.Logger(t), authn, grpcserver.Options{MaxConcurrentStreams: 1})
	conn, _, _ := runOnLoopback(t, s, time.Second)
	c, err := net.Dial("tcp", conn.Target())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	// Two health Watch streams (public: no key needed). Neither sends its request message, so the
	// first stays open while the second arrives.
	for _, id := range []uint32{1, 3} {
		block.Reset()
		for _, f := range [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Watch"}, {":authority", "test"},
			{"content-type", "application/grpc"}, {"te", "trailers"},
		} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for the stream past the cap: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 3 || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Errorf("RST_STREAM of stream %d with %v, want stream 3 with REFUSED_STREAM", rst.StreamID, rst.ErrCode)
			}
			return
		}
	}
}
