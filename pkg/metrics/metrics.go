// Package metrics is the Prometheus plumbing both services share: a registry per process with the
// Go runtime and process collectors, gRPC server and client metrics from go-grpc-middleware's
// Prometheus provider, and the HTTP endpoint that serves them on -metrics-addr (off by default).
//
// Each service adds its own domain metrics (services/lifecycle/metrics.go,
// services/order/metrics.go); docs/metrics.md lists them all, and docs/alerts.yml alerts on them.
package metrics

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/certhosting/certhosting/pkg/cli"
)

// latencyBuckets are the gRPC handling-time histogram's buckets, in seconds: from a cached read
// (well under a millisecond) to a CA call at its timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Set is one process's metrics: its registry, and the gRPC server and client metrics on it.
type Set struct {
	Registry *prometheus.Registry
	Server   *grpcprom.ServerMetrics
	Client   *grpcprom.ClientMetrics
}

// New makes a registry with the runtime and process collectors and the gRPC metrics.
func New() *Set {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Set{
		Registry: reg,
		Server:   grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(latencyBuckets))),
		Client:   grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramBuckets(latencyBuckets))),
	}
	reg.MustRegister(s.Server, s.Client)
	return s
}

// ServerInterceptors are the interceptors that count a server's calls, to put first in its chain (so
// refused calls count too, with their code).
func (s *Set) ServerInterceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return s.Server.UnaryServerInterceptor(), s.Server.StreamServerInterceptor()
}

// DialOptions count a client connection's calls.
func (s *Set) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(s.Client.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(s.Client.StreamClientInterceptor()),
	}
}

// Handler serves the registry in the Prometheus text format.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry})
}

// Serve serves /metrics on addr until ctx ends, and returns once listening. The endpoint has no
// authentication: bind it to loopback or a monitoring network.
func Serve(ctx context.Context, addr string, s *Set, log *slog.Logger) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.Handler())
	return cli.ServeHTTP(ctx, "metrics-addr", addr, mux, log)
}
