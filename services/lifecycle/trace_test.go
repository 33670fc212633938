package lifecycle_test

import (
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestRenewalTraceReachesTheCA: the ticker's renewal span is stored with the successor's
// application, and the CA calls made for it in later sweeps (submit, then status until issued)
// continue that trace as its children.
func TestRenewalTraceReachesTheCA(t *testing.T) {
	// Not parallel: it installs the process's tracer provider.
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(t.Context()) })

	e := newEnv(t, envOptions{maxValidity: 398 * day})
	b, _ := e.hosting()
	e.advance(340*day, nil)
	if got := e.states(b.GetBundleId()); got[1] != stHosted {
		t.Fatalf("states %v, want the successor HOSTED", got)
	}
	var renewal sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "renewal.start" {
			for _, a := range s.Attributes() {
				if string(a.Key) == "certhosting.bundle_id" && a.Value.AsString() == b.GetBundleId() {
					renewal = s
				}
			}
		}
	}
	if renewal == nil {
		t.Fatal("no renewal.start span for the bundle")
	}
	calls := map[string]int{}
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == renewal.SpanContext().TraceID() && s.Parent().SpanID() == renewal.SpanContext().SpanID() {
			calls[s.Name()]++
		}
	}
	if calls["ca.submit"] != 1 || calls["ca.status"] < 1 {
		t.Errorf("CA calls in the renewal's trace: %v; want one ca.submit and at least one ca.status", calls)
	}
}
