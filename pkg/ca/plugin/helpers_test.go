package plugin_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	cav1 "github.com/certhosting/certhosting/gen/go/certhosting/ca/v1"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
)

// token is the plug-in's shared secret in these tests.
const token = "plugin-test-token-0123456789"

// serve runs impl as a plug-in on a loopback port, behind TokenAuth(token) and with a health
// service, as cmd/certhosting-localca-plugin does, until the test ends. opts add server options
// (transport credentials). It returns the address.
func serve(t *testing.T, impl cav1.CertificateAuthorityServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	lis := listen(t)
	serveOn(t, lis, token, impl, opts...)
	return lis.Addr().String()
}

// listen listens on a free loopback port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

// serveOn is serve on a listener the test made, behind TokenAuth(tok).
func serveOn(t *testing.T, lis net.Listener, tok string, impl cav1.CertificateAuthorityServiceServer, opts ...grpc.ServerOption) {
	t.Helper()
	unary, stream := plugin.TokenAuth(tok)
	srv := grpc.NewServer(append(opts, grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))...)
	cav1.RegisterCertificateAuthorityServiceServer(srv, impl)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
}

// dial makes a plug-in client and closes it when the test ends.
func dial(t *testing.T, cfg plugin.ClientConfig) *plugin.Client {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = token
	}
	c, err := plugin.Dial(cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn is a plain gRPC connection to a plug-in, for calls the plug-in client cannot make (no
// token, another scheme).
func rawConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawPlugin is a plug-in written against the proto alone, as one in another language would be:
// it answers with what the test set, fails with err, or never answers (hang).
type rawPlugin struct {
	cav1.UnimplementedCertificateAuthorityServiceServer
	submit *cav1.SubmitResponse
	status *cav1.GetStatusResponse
	err    error
	hang   bool
}

func (p *rawPlugin) answer(ctx context.Context) error {
	if p.hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return p.err
}

func (p *rawPlugin) Submit(ctx context.Context, _ *cav1.SubmitRequest) (*cav1.SubmitResponse, error) {
	if err := p.answer(ctx); err != nil {
		return nil, err
	}
	return p.submit, nil
}

func (p *rawPlugin) GetStatus(ctx context.Context, _ *cav1.GetStatusRequest) (*cav1.GetStatusResponse, error) {
	if err := p.answer(ctx); err != nil {
		return nil, err
	}
	return p.status, nil
}

func (p *rawPlugin) Cancel(ctx context.Context, _ *cav1.CancelRequest) (*cav1.CancelResponse, error) {
	if err := p.answer(ctx); err != nil {
		return nil, err
	}
	return &cav1.CancelResponse{}, nil
}

// recordingCA is a ca.Client that keeps the requests and refs it is given and answers what the
// test set: what a Go plug-in built on plugin.Server hands to its CA, and what it returns.
type recordingCA struct {
	mu       sync.Mutex
	requests []ca.Request
	refs     []string

	sub ca.Submission
	st  ca.Status
	err error
}

func (r *recordingCA) Submit(_ context.Context, req ca.Request) (ca.Submission, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, req)
	return r.sub, r.err
}

func (r *recordingCA) Status(_ context.Context, ref string) (ca.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return r.st, r.err
}

func (r *recordingCA) Cancel(_ context.Context, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs = append(r.refs, ref)
	return r.err
}

func (r *recordingCA) lastRequest(t *testing.T) ca.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.requests) == 0 {
		t.Fatal("the CA behind the plug-in got no request")
	}
	return r.requests[len(r.requests)-1]
}

// call is one of the client's three methods, made so that tests can run every method through the
// same checks. It returns the verdict or state Status gave (zero for the others) and the error.
type call struct {
	name string
	do   func(ctx context.Context, c *plugin.Client) (ca.Status, error)
}

var calls = []call{
	{"Submit", func(ctx context.Context, c *plugin.Client) (ca.Status, error) {
		_, err := c.Submit(ctx, ca.Request{ID: "app-1", Domains: []string{"shop.example.com"}, Validation: "DV"})
		return ca.Status{}, err
	}},
	{"Status", func(ctx context.Context, c *plugin.Client) (ca.Status, error) { return c.Status(ctx, "ref-1") }},
	{"Cancel", func(ctx context.Context, c *plugin.Client) (ca.Status, error) {
		return ca.Status{}, c.Cancel(ctx, "ref-1")
	}},
}

// waitUntil polls cond every 20 ms until it returns nil, failing the test with its last error
// after timeout.
func waitUntil(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pendingAnswer is a plug-in's answer for an application still being verified.
var pendingAnswer = &cav1.GetStatusResponse{State: cav1.ApplicationState_APPLICATION_STATE_PENDING}
