package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/internal/pair"
)

// SIGTERM stops a service gracefully: health watchers see NOT_SERVING, then every open stream (the
// health watch, a WatchEvents stream) ends with Unavailable "shutting down" instead of holding the
// shutdown for the grace period, the process exits 0, and then nothing answers on its address.
// The grace period is ten minutes, so a stream that held the shutdown would fail the test.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	grace := []string{"-shutdown-grace=10m"}
	e := startWith(t, pair.Options{Dir: t.TempDir(), OrderArgs: grace, LifecycleArgs: grace})
	for _, tc := range []struct {
		name string
		addr string
		stop func() error
	}{
		{"order", e.OrderAddr, e.StopOrder},
		{"lifecycle", e.LifecycleAddr, e.StopLifecycle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, tc.addr, e.DemoKey)
			health := healthpb.NewHealthClient(conn)
			watch, err := health.Watch(t.Context(), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("health Watch: %v", err)
			}
			if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health before SIGTERM = %v, %v; want SERVING", got.GetStatus(), err)
			}
			var events grpc.ServerStreamingClient[lifecyclev1.WatchEventsResponse]
			if tc.name == "lifecycle" {
				events, err = lifecyclev1.NewLifecycleServiceClient(conn).WatchEvents(t.Context(), &lifecyclev1.WatchEventsRequest{})
				if err != nil {
					t.Fatalf("WatchEvents: %v", err)
				}
				if _, err := events.Header(); err != nil {
					t.Fatalf("WatchEvents headers: %v", err)
				}
			}

			stopped := make(chan error, 1)
			go func() { stopped <- tc.stop() }() // SIGTERM, then wait for the exit
			if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health after SIGTERM = %v, %v; want NOT_SERVING", got.GetStatus(), err)
			}
			_, err = watch.Recv()
			grpctest.WantShuttingDown(t, "health Watch", err)
			if events != nil {
				_, err = events.Recv()
				grpctest.WantShuttingDown(t, "WatchEvents", err)
			}
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("%s service exit after SIGTERM: %v; want status 0", tc.name, err)
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s service still running a minute after SIGTERM", tc.name)
			}

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err = health.Check(ctx, &healthpb.HealthCheckRequest{})
			wantCode(t, "health Check after exit", err, codes.Unavailable)
		})
	}
}
