// Package tracing is OpenTelemetry tracing for both services, off by default. With -otlp-endpoint
// set, spans go to an OTLP/gRPC collector: every gRPC call (otelgrpc on the servers and on the
// order→lifecycle and lifecycle→CA plug-in clients), the outbox relay's delivery of a purchase, and
// a renewal's CA calls.
//
// Work that crosses a database row keeps its trace through the row: PayOrder stores its span's
// context (a W3C traceparent) in the outbox row, and the relay continues that trace when it
// delivers the purchase, so one trace runs from PayOrder through the relay into the lifecycle
// service's CreateBundle. A renewal stores its context in its application row the same way, and
// the ticker's later submit and status calls to the CA continue it.
package tracing

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Tracer is the services' tracer for their own spans (outbox delivery, CA calls).
func Tracer() trace.Tracer { return otel.Tracer("github.com/certhosting/certhosting") }

// propagator is W3C trace context, the format stored in rows and sent in gRPC metadata.
var propagator = propagation.TraceContext{}

// Setup starts exporting spans to the OTLP/gRPC collector at endpoint ("host:port", plaintext:
// a collector beside the service) as service name, and returns the function that flushes and
// stops it. An empty endpoint leaves tracing off (the global no-op provider) and returns a no-op.
func Setup(ctx context.Context, endpoint, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagator)
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("-otlp-endpoint: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// ServerOption instruments a gRPC server (a span per call, continuing the caller's trace).
func ServerOption() grpc.ServerOption { return grpc.StatsHandler(otelgrpc.NewServerHandler()) }

// DialOption instruments a gRPC client (a span per call, its context sent to the server).
func DialOption() grpc.DialOption { return grpc.WithStatsHandler(otelgrpc.NewClientHandler()) }

// Inject returns ctx's span context as a W3C traceparent to store in a row; "" when ctx carries
// no sampled span (tracing off).
func Inject(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// Extract returns ctx continuing the trace of a stored traceparent (unchanged when it is empty or
// malformed).
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}
