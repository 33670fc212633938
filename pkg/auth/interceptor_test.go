package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
)

// whoami is a LifecycleService whose GetBundle answers with the principal the interceptor put in
// the context, so a test sees exactly who the server thinks called.
type whoami struct {
	lifecyclev1.UnimplementedLifecycleServiceServer
}

func (whoami) GetBundle(ctx context.Context, _ *lifecyclev1.GetBundleRequest) (*lifecyclev1.GetBundleResponse, error) {
	p, ok := auth.Caller(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no caller in context")
	}
	return &lifecyclev1.GetBundleResponse{Bundle: &lifecyclev1.Bundle{AccountId: p.AccountID, BundleId: p.KeyID, OrderId: string(p.Role)}}, nil
}

// testPolicy: GetBundle for customers and support, CreateBundle for the service role, and
// ListBundles deliberately missing.
var testPolicy = auth.Policy{
	lifecyclev1.LifecycleService_GetBundle_FullMethodName:    auth.Allow(auth.RoleOwner, auth.RoleSupport),
	lifecyclev1.LifecycleService_CreateBundle_FullMethodName: auth.Allow(auth.RoleService),
}

type authEnv struct {
	store                      *auth.Store
	srv                        *grpctest.Server
	customer, support, service grpctest.Caller
}

// newAuthEnv serves whoami behind the real interceptor chain with the given rate limit.
func newAuthEnv(t *testing.T, rps float64) *authEnv {
	t.Helper()
	st, clk := newStore(t, dbtest.FromEnv(t))
	e := &authEnv{
		store:    st,
		customer: grpctest.NewCaller(t, st, "customer", auth.RoleOwner),
		support:  grpctest.NewCaller(t, st, "support", auth.RoleSupport),
		service:  grpctest.NewCaller(t, st, "service", auth.RoleService),
	}
	authn := auth.NewInterceptor(auth.NewVerifier(st, clk, time.Minute), testPolicy, auth.Limits{Rate: rps})
	e.srv = grpctest.Start(t, authn, func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, whoami{}) })
	return e
}

func (e *authEnv) client(t *testing.T, key string) lifecyclev1.LifecycleServiceClient {
	return lifecyclev1.NewLifecycleServiceClient(e.srv.Dial(t, key))
}

func TestInterceptorPassesCaller(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 0)
	for _, c := range []struct {
		who  grpctest.Caller
		role auth.Role
	}{{e.customer, auth.RoleOwner}, {e.support, auth.RoleSupport}} {
		resp, err := e.client(t, c.who.Key).GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{})
		if err != nil {
			t.Fatalf("GetBundle as %s: %v", c.role, err)
		}
		b := resp.GetBundle()
		if b.GetAccountId() != c.who.AccountID || b.GetBundleId() != c.who.KeyID || b.GetOrderId() != string(c.role) {
			t.Errorf("handler saw account %s key %s role %s, want %s %s %s",
				b.GetAccountId(), b.GetBundleId(), b.GetOrderId(), c.who.AccountID, c.who.KeyID, c.role)
		}
	}
}

func TestInterceptorRefuses(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 0)
	anonymous := e.client(t, "")
	ctx := context.Background()
	withAuth := func(v string) context.Context { return metadata.AppendToOutgoingContext(ctx, "authorization", v) }
	// The three methods: GetBundle for customers and support, CreateBundle for the service role,
	// ListBundles missing from the policy.
	get := func(c lifecyclev1.LifecycleServiceClient, ctx context.Context) func() error {
		return func() error { _, err := c.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); return err }
	}
	create := func(key string) func() error {
		return func() error {
			_, err := e.client(t, key).CreateBundle(ctx, &lifecyclev1.CreateBundleRequest{})
			return err
		}
	}
	list := func(c lifecyclev1.LifecycleServiceClient) func() error {
		return func() error { _, err := c.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{}); return err }
	}
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"no metadata", get(anonymous, ctx), codes.Unauthenticated},
		{"basic scheme", get(anonymous, withAuth("Basic "+e.customer.Key)), codes.Unauthenticated},
		{"scheme only", get(anonymous, withAuth("Bearer")), codes.Unauthenticated},
		{"empty key", get(anonymous, withAuth("Bearer   ")), codes.Unauthenticated},
		{"key without scheme", get(anonymous, withAuth(e.customer.Key)), codes.Unauthenticated},
		{"garbage key", get(anonymous, withAuth("Bearer chk_nope")), codes.Unauthenticated},
		{"well-formed unknown key", get(e.client(t, "chk_"+strings.Repeat("A", 43)), ctx), codes.Unauthenticated},
		{"lower-case scheme accepted", get(anonymous, withAuth("bearer "+e.customer.Key)), codes.OK},
		{"customer calls a service method", create(e.customer.Key), codes.PermissionDenied},
		{"support calls a service method", create(e.support.Key), codes.PermissionDenied},
		{"service calls a customer method", get(e.client(t, e.service.Key), ctx), codes.PermissionDenied},
		// Allowed by the policy: the call reaches whoami, which does not implement CreateBundle.
		{"service calls its method", create(e.service.Key), codes.Unimplemented},
		{"method missing from the policy, valid key", list(e.client(t, e.customer.Key)), codes.PermissionDenied},
		{"method missing from the policy, no key", list(anonymous), codes.PermissionDenied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Errorf("code = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInterceptorRevokedKey(t *testing.T) {
	t.Parallel()
	st, clk := newStore(t, dbtest.FromEnv(t))
	c := grpctest.NewCaller(t, st, "customer", auth.RoleOwner)
	const ttl = 2 * time.Second
	srv := grpctest.Start(t, auth.NewInterceptor(auth.NewVerifier(st, clk, ttl), testPolicy, auth.Limits{}),
		func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, whoami{}) })
	client := lifecyclev1.NewLifecycleServiceClient(srv.Dial(t, c.Key))
	ctx := context.Background()
	if _, err := client.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeKey(ctx, c.KeyID); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl)
	if _, err := client.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("call with a key revoked a TTL ago = %v, want Unauthenticated", err)
	}
}

// Health checking and reflection need no key, unary or streaming.
func TestInterceptorPublicServices(t *testing.T) {
	t.Parallel()
	e := newAuthEnv(t, 0)
	conn := e.srv.Dial(t, "")
	ctx := context.Background()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health Check without a key = %v, %v; want SERVING", resp, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection without a key: %v", err)
	}
	found := false
	for _, s := range r.GetListServicesResponse().GetService() {
		found = found || s.GetName() == "certhosting.lifecycle.v1.LifecycleService"
	}
	if !found {
		t.Errorf("reflection listed %v, want the lifecycle service among them", r.GetListServicesResponse().GetService())
	}
	stream.CloseSend()
}

// Each account gets its own budget; calls refused by the policy do not spend it.
func TestInterceptorRateLimit(t *testing.T) {
	t.Parallel()
	// 0.001 calls a second: a burst of one call, and no refill within the test.
	e := newAuthEnv(t, 0.001)
	ctx := context.Background()
	customer := e.client(t, e.customer.Key)
	if _, err := customer.CreateBundle(ctx, &lifecyclev1.CreateBundleRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateBundle as customer = %v, want PermissionDenied", err)
	}
	if _, err := customer.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); err != nil {
		t.Fatalf("first call: %v", err)
	}
	if _, err := customer.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second call = %v, want ResourceExhausted", err)
	}
	// A second key of the same account shares the account's budget.
	_, secret, err := e.store.CreateKey(ctx, e.customer.AccountID, auth.RoleOwner, "second")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(t, secret).GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("call with the account's other key = %v, want ResourceExhausted", err)
	}
	if _, err := e.client(t, e.support.Key).GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); err != nil {
		t.Errorf("another account's first call = %v, want OK", err)
	}
}

// fakeStream is a server stream that only has a context: enough for the stream interceptor.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

// The stream interceptor applies the same checks and hands the handler a stream whose context
// carries the caller. (Neither service has a streaming RPC yet, so it is driven directly.)
func TestStreamInterceptor(t *testing.T) {
	t.Parallel()
	st, clk := newStore(t, dbtest.FromEnv(t))
	c := grpctest.NewCaller(t, st, "customer", auth.RoleOwner)
	const method = "/test.v1.Test/Watch"
	intercept := auth.NewInterceptor(auth.NewVerifier(st, clk, time.Minute), auth.Policy{method: auth.Allow(auth.RoleOwner)}, auth.Limits{}).Stream()
	incoming := func(kv ...string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs(kv...))
	}
	tests := []struct {
		name   string
		ctx    context.Context
		method string
		want   codes.Code
	}{
		{"valid key", incoming("authorization", "Bearer "+c.Key), method, codes.OK},
		{"no key", context.Background(), method, codes.Unauthenticated},
		{"unknown method", incoming("authorization", "Bearer "+c.Key), "/test.v1.Test/Other", codes.PermissionDenied},
		{"public", context.Background(), "/grpc.health.v1.Health/Watch", codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got auth.Principal
			err := intercept(nil, fakeStream{ctx: tc.ctx}, &grpc.StreamServerInfo{FullMethod: tc.method}, func(_ any, ss grpc.ServerStream) error {
				got, _ = auth.Caller(ss.Context())
				return nil
			})
			if status.Code(err) != tc.want {
				t.Fatalf("code = %v, want %v", status.Code(err), tc.want)
			}
			if tc.name == "valid key" && got.AccountID != c.AccountID {
				t.Errorf("handler saw account %q, want %q", got.AccountID, c.AccountID)
			}
		})
	}
}
