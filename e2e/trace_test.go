package e2e

import (
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/pair"
)

// collector is an OTLP/gRPC trace collector inside the test: it keeps every span it is sent, with
// the service that sent it.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []collectedSpan
}

type collectedSpan struct {
	service string
	*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, collectedSpan{service: service, Span: s})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) snapshot() []collectedSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]collectedSpan(nil), c.spans...)
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

// TestTraceAcrossTheOutbox: with -otlp-endpoint set on both services, one trace runs from the
// customer's PayOrder call through the outbox (the relay's delivery, in another goroutine and
// possibly another process replica, continues the trace stored in the row) into the lifecycle
// service's BatchCreateBundles (the relay's batch of one): the spans share the trace id, and each has its parent in that trace.
// Both processes' -metrics-addr, scraped, count the same calls.
func TestTraceAcrossTheOutbox(t *testing.T) {
	t.Parallel()
	col, addr := startCollector(t)
	// The metrics listeners take ports of the kernel's choosing (a port picked free beforehand may be
	// taken meanwhile, by the other service's own listeners among others); each logs the address.
	e := startWith(t, pair.Options{Dir: t.TempDir(),
		OrderArgs:     []string{"-otlp-endpoint", addr, "-metrics-addr", "127.0.0.1:0"},
		LifecycleArgs: []string{"-otlp-endpoint", addr, "-metrics-addr", "127.0.0.1:0"}})
	orderMetrics, lifecycleMetrics := loggedAddr(t, e.Logs(), "order", "metrics-addr"), loggedAddr(t, e.Logs(), "lifecycle", "metrics-addr")
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		// The gRPC metrics of both sides of the relay's call, and the domain's.
		for _, c := range []struct{ addr, want string }{
			{orderMetrics, `grpc_server_handled_total{grpc_code="OK",grpc_method="PayOrder",grpc_service="certhosting.order.v1.OrderService",grpc_type="unary"} 1`},
			{orderMetrics, `grpc_client_handled_total{grpc_code="OK",grpc_method="BatchCreateBundles",grpc_service="certhosting.lifecycle.v1.LifecycleService",grpc_type="unary"} 1`},
			{orderMetrics, "certhosting_outbox_backlog 0"},
			{lifecycleMetrics, `grpc_server_handled_total{grpc_code="OK",grpc_method="BatchCreateBundles",grpc_service="certhosting.lifecycle.v1.LifecycleService",grpc_type="unary"} 1`},
			{lifecycleMetrics, `certhosting_certificates{hosting_status="WAITING",state="PENDING_APPLICATION"} 1`},
			{lifecycleMetrics, "certhosting_store_up 1"},
		} {
			resp, err := http.Get("http://" + c.addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), c.want+"\n") {
				t.Errorf("%s/metrics lacks %q", c.addr, c.want)
			}
		}
	})
	ctx := t.Context()
	o, err := e.order.CreateOrder(ctx, &orderv1.CreateOrderRequest{RequestId: "trace", ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 3, Hosting: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.order.PayOrder(ctx, &orderv1.PayOrderRequest{OrderId: o.GetOrder().GetOrderId(), PaymentReference: "pay-trace"}); err != nil {
		t.Fatal(err)
	}

	want := []struct{ service, name string }{
		{"certhosting-order", "certhosting.order.v1.OrderService/PayOrder"},
		{"certhosting-order", "outbox.deliver lifecycle.CreateBundle"},
		// The relay sends CreateBundle messages in batches; a batch continues its first message's trace.
		{"certhosting-order", "certhosting.lifecycle.v1.LifecycleService/BatchCreateBundles"}, // the client's span
		{"certhosting-lifecycle", "certhosting.lifecycle.v1.LifecycleService/BatchCreateBundles"},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := col.snapshot()
		var pay *collectedSpan
		for i, s := range spans {
			if s.service == want[0].service && s.GetName() == want[0].name {
				pay = &spans[i]
			}
		}
		found := map[int]collectedSpan{}
		if pay != nil {
			for _, s := range spans {
				if string(s.GetTraceId()) != string(pay.GetTraceId()) {
					continue
				}
				for i, w := range want {
					if s.service == w.service && s.GetName() == w.name && (w.service != "certhosting-order" || w.name != want[2].name || s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT) {
						found[i] = s
					}
				}
			}
		}
		if len(found) == len(want) {
			// Each span's parent is the one before it: PayOrder → delivery → client call → server.
			for i := 1; i < len(want); i++ {
				if string(found[i].GetParentSpanId()) != string(found[i-1].GetSpanId()) {
					t.Errorf("%s %q: parent %s, want %q's span %s", want[i].service, want[i].name,
						hex.EncodeToString(found[i].GetParentSpanId()), want[i-1].name, hex.EncodeToString(found[i-1].GetSpanId()))
				}
			}
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.service+" "+s.GetName()+" trace "+hex.EncodeToString(s.GetTraceId()))
			}
			t.Fatalf("after 30 s the collector has %d spans and not the trace %v; spans:\n%v", len(spans), want, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loggedAddr is the address a process of the pair logged for the listener of flag ("listening"
// flag=... addr=...).
func loggedAddr(t *testing.T, logs, process, flag string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(process) + `: .*msg=listening flag=` + regexp.QuoteMeta(flag) + ` addr=(\S+)`).FindStringSubmatch(logs)
	if m == nil {
		t.Fatalf("%s logged no address for -%s", process, flag)
	}
	return m[1]
}
