package e2e

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// SIGTERM stops a service gracefully: health watchers see NOT_SERVING, calls in progress (the
// watch itself) may finish, the process exits 0, and then nothing answers on its address.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, tc := range []struct {
		name string
		addr string
		stop func() error
	}{
		{"order", e.OrderAddr, e.StopOrder},
		{"lifecycle", e.LifecycleAddr, e.StopLifecycle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			health := healthpb.NewHealthClient(dial(t, tc.addr, ""))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("health Watch: %v", err)
			}
			if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health before SIGTERM = %v, %v; want SERVING", got.GetStatus(), err)
			}

			stopped := make(chan error, 1)
			go func() { stopped <- tc.stop() }() // SIGTERM, then wait for the exit
			if got, err := watch.Recv(); err != nil || got.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Errorf("health after SIGTERM = %v, %v; want NOT_SERVING", got.GetStatus(), err)
			}
			cancel() // end the watch, the last call in progress, so the graceful stop can finish
			select {
			case err := <-stopped:
				if err != nil {
					t.Fatalf("%s service exit after SIGTERM: %v; want status 0", tc.name, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s service still running 30s after SIGTERM", tc.name)
			}

			_, err = health.Check(t.Context(), &healthpb.HealthCheckRequest{})
			wantCode(t, "health Check after exit", err, codes.Unavailable)
		})
	}
}
