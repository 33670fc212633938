// Package grpcserver is the server plumbing both services share: the interceptor chain (panic
// recovery, error mapping and logging, authentication), health checking, reflection, message size
// limits, and a Run that serves until its context ends and then shuts down gracefully.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
)

// MaxRecvMsgSize bounds a request message. Our largest request (an application with a customer
// CSR and many domains) is a few KiB; 1 MiB leaves room and refuses floods (ResourceExhausted).
const MaxRecvMsgSize = 1 << 20

// ErrShuttingDown is the status a stream that was still open when the server began to shut down
// ends with. Unavailable is the code gRPC clients retry: a WatchEvents client reopens its stream
// (on another replica, or on this one once it is back) after the last event_id it received.
var ErrShuttingDown = status.Error(codes.Unavailable, "server is shutting down; reconnect and resume the stream")

// Server is a gRPC server with health and reflection registered.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *slog.Logger
	codec  *requestCodec

	// draining ends when Run begins to shut down; it ends the open streams (see drainingStream).
	draining   context.Context
	startDrain context.CancelFunc
}

// DefaultMaxConcurrentStreams is the default of Options.MaxConcurrentStreams in the services'
// flags: the smallest value HTTP/2 (RFC 9113, 6.5.2) recommends a peer allow.
const DefaultMaxConcurrentStreams = 100

// Options tune a Server. The zero value is grpc-go's defaults.
type Options struct {
	// MaxConcurrentStreams caps the calls (unary calls and streams alike: each is an HTTP/2
	// stream) open at once on one client connection; 0 means no cap. The server announces it in
	// its HTTP/2 SETTINGS. A grpc-go client honours it by queueing the call that would pass it
	// until one ends or the call's deadline passes (the call then fails with DeadlineExceeded
	// without reaching the server); a client that ignores it has the extra stream reset with
	// REFUSED_STREAM (grpc-go's server does this), which a client sees as Unavailable. So the cap
	// bounds what one connection costs the server, but the client is told by waiting, not by a
	// status naming the cap: the per-account stream cap (auth.Limits) is the one that refuses.
	MaxConcurrentStreams uint32
	// Outer are interceptors put before all others, so that they see every call (refused ones
	// too) with the status its client gets: the gRPC metrics (pkg/metrics).
	OuterUnary  grpc.UnaryServerInterceptor
	OuterStream grpc.StreamServerInterceptor
	// More are further server options: the transport credentials of a TLS listener (grpc.Creds),
	// the tracing stats handler (pkg/tracing).
	More []grpc.ServerOption
}

// New makes a server whose calls pass through recovery, logging and the given auth interceptor.
// Register the service implementations on s.GRPC before Run.
func New(log *slog.Logger, authn *auth.Interceptor, opts Options) *Server {
	s := &Server{Health: health.NewServer(), log: log, codec: newRequestCodec()}
	s.draining, s.startDrain = context.WithCancel(context.Background())
	unary := []grpc.UnaryServerInterceptor{s.unaryErrors, authn.Unary(), s.decodeErrors}
	stream := []grpc.StreamServerInterceptor{s.streamErrors, authn.Stream(), s.decodeErrorsStream}
	if opts.OuterUnary != nil {
		unary = append([]grpc.UnaryServerInterceptor{opts.OuterUnary}, unary...)
	}
	if opts.OuterStream != nil {
		stream = append([]grpc.StreamServerInterceptor{opts.OuterStream}, stream...)
	}
	s.GRPC = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams), // 0: grpc-go's default, no cap
		grpc.ForceServerCodecV2(s.codec),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}, opts.More...)...)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// Run serves on lis until ctx ends, then marks the server NOT_SERVING (so balancers stop sending
// new calls), ends the open streams with ErrShuttingDown, lets unary calls in progress finish for
// up to grace, and stops.
//
// Streams end at once because they never finish by themselves: a WatchEvents stream or a health
// Watch (which grpc-go's health server keeps open after its Shutdown) would otherwise hold every
// shutdown for the whole grace period and then be cut off without a status.
//
// Health is reported for the empty service name (the whole server) and for every service
// registered on s.GRPC by its full name (such as "certhosting.order.v1.OrderService"), so probes
// that name the service they depend on get an answer rather than NOT_FOUND.
func (s *Server) Run(ctx context.Context, lis net.Listener, grace time.Duration) error {
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.Health.Resume()
	errc := make(chan error, 1)
	go func() { errc <- s.GRPC.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	s.startDrain()
	stopped := make(chan struct{})
	go func() { s.GRPC.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		s.log.Warn("graceful stop timed out; closing remaining calls", "grace", grace)
		s.GRPC.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}

func (s *Server) unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx, caller := auth.WithSlot(ctx)
	defer s.codec.take(req) // a decoding error nobody asked for (the call was refused before decodeErrors)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	resp, err = handler(ctx, req)
	return resp, s.finish(caller, info.FullMethod, start, err)
}

func (s *Server) streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx, caller := auth.WithSlot(ss.Context())
	ds := s.drainOnShutdown(ctx, ss)
	defer ds.stop()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	err = handler(srv, ds)
	if errors.Is(context.Cause(ds.ctx), ErrShuttingDown) {
		// The handler ended because the server is shutting down, whatever it returned (nil from
		// WatchEvents, Canceled from the health Watch): tell the client to reconnect.
		err = ErrShuttingDown
	}
	return s.finish(caller, info.FullMethod, start, err)
}

// finish maps a handler's error to what the client sees, and logs the call. Errors that carry a
// gRPC status (apierr.Error, or a status from a dependency) pass through; context errors become
// Canceled/DeadlineExceeded; a database that cannot be reached becomes Unavailable and a write
// that kept losing races Aborted (both retryable; pkg/db classifies them); anything else is our fault: logged in full, returned as a bare
// Internal so no internal detail (SQL, paths) reaches the client.
func (s *Server) finish(caller *auth.Principal, method string, start time.Time, err error) error {
	code := codes.OK
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
			code = st.Code()
		} else if errors.Is(err, context.Canceled) {
			code, err = codes.Canceled, status.Error(codes.Canceled, "call cancelled")
		} else if errors.Is(err, context.DeadlineExceeded) {
			code, err = codes.DeadlineExceeded, status.Error(codes.DeadlineExceeded, "deadline exceeded")
		} else if db.IsUnavailable(err) {
			// The database went away (restarting, unreachable): the client's call is fine and
			// worth retrying, which Unavailable says; the detail stays in our log.
			s.log.Warn("database unavailable", "method", method, "err", err)
			code, err = codes.Unavailable, status.Error(codes.Unavailable, "the database is unavailable; try again")
		} else if db.IsRetryable(err) {
			code, err = codes.Aborted, status.Error(codes.Aborted, "a concurrent change got there first; try again")
		} else {
			s.log.Error("internal error", "method", method, "err", err)
			code, err = codes.Internal, status.Error(codes.Internal, "internal error")
		}
	}
	attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start)}
	if caller.AccountID != "" {
		attrs = append(attrs, "account", caller.AccountID, "key_id", caller.KeyID)
	}
	switch code {
	case codes.OK:
		s.log.Debug("call", attrs...)
	case codes.Internal, codes.Unknown, codes.DataLoss:
		s.log.Error("call", append(attrs, "err", err)...)
	default:
		s.log.Info("call", append(attrs, "err", err)...)
	}
	return err
}

// drainingStream is a server stream whose context is cancelled, with ErrShuttingDown as the cause,
// once the server begins to shut down. A health Watch is the exception while the last status it
// sent is SERVING: its context ends only after it has sent the NOT_SERVING that Health.Shutdown
// causes, so a watcher always learns the server is going away before its stream ends. (A watch of
// an unknown service never saw SERVING, and ends at once.)
type drainingStream struct {
	grpc.ServerStream
	ctx      context.Context
	cancel   context.CancelCauseFunc
	draining context.Context
	serving  atomic.Bool // the last status a health Watch sent, or is sending, is SERVING
	stop     func() bool // unregisters the drain callback
}

func (s *Server) drainOnShutdown(ctx context.Context, ss grpc.ServerStream) *drainingStream {
	ctx, cancel := context.WithCancelCause(ctx)
	ds := &drainingStream{ServerStream: ss, ctx: ctx, cancel: cancel, draining: s.draining}
	unregister := context.AfterFunc(s.draining, func() {
		if !ds.serving.Load() {
			cancel(ErrShuttingDown)
		}
	})
	ds.stop = func() bool { cancel(context.Canceled); return unregister() }
	return ds
}

func (d *drainingStream) Context() context.Context { return d.ctx }

// SendMsg sends m. For a health Watch it keeps the serving flag, set before the send so that a
// drain starting meanwhile cannot miss a SERVING the client is about to see; and once the server is
// draining it sends NOT_SERVING whatever the status (a SERVING the handler took from its channel
// just before the shutdown would be a lie), then ends the stream.
func (d *drainingStream) SendMsg(m any) error {
	r, ok := m.(*healthpb.HealthCheckResponse)
	if !ok {
		return d.ServerStream.SendMsg(m)
	}
	d.serving.Store(r.GetStatus() == healthpb.HealthCheckResponse_SERVING)
	if d.draining.Err() == nil {
		return d.ServerStream.SendMsg(m)
	}
	if r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
		m = &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING}
	}
	err := d.ServerStream.SendMsg(m)
	d.cancel(ErrShuttingDown)
	return err
}
