package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// One account never sees or touches another's orders, bundles, certificates or history: every
// such call is NotFound, and lists are empty.
func TestAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	e := start(t)
	paid := e.buy(t, "tenant-a-paid", 3, true)
	unpaid := e.create(t, orderRequest("tenant-a-unpaid", 2, false))
	b := connect(t, e.Pair, e.newCustomer(t, "tenant-b").key)

	ctx := t.Context()
	cert := paid.GetCertificateIds()[0]
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"GetOrder(paid)", func() error {
			_, err := b.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: paid.GetOrderId()})
			return err
		}},
		{"PayOrder(unpaid)", func() error {
			_, err := b.order.PayOrder(ctx, &orderv1.PayOrderRequest{OrderId: unpaid.GetOrderId(), PaymentReference: "b-pays"})
			return err
		}},
		{"PayOrder(paid, same reference)", func() error {
			_, err := b.order.PayOrder(ctx, &orderv1.PayOrderRequest{OrderId: paid.GetOrderId(), PaymentReference: paid.GetPaymentReference()})
			return err
		}},
		{"CancelOrder(unpaid)", func() error {
			_, err := b.order.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: unpaid.GetOrderId()})
			return err
		}},
		{"GetBundle", func() error {
			_, err := b.lifecycle.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: paid.GetBundleId()})
			return err
		}},
		{"GetCertificate", func() error {
			_, err := b.lifecycle.GetCertificate(ctx, &lifecyclev1.GetCertificateRequest{CertificateId: cert})
			return err
		}},
		{"GetCertificateLifecycle", func() error {
			_, err := b.lifecycle.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert})
			return err
		}},
	} {
		wantCode(t, "account B "+tc.name+" of account A", tc.call(), codes.NotFound)
	}

	if got := b.listOrders(t); len(got) != 0 {
		t.Errorf("account B lists %d orders, want 0", len(got))
	}
	if got := b.bundlesPerOrder(t); len(got) != 0 {
		t.Errorf("account B lists bundles of %d orders, want 0", len(got))
	}
	certs, err := b.lifecycle.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{BundleId: paid.GetBundleId()})
	if err != nil || len(certs.GetCertificates()) != 0 {
		t.Errorf("account B ListCertificates(A's bundle) = %d certificates, %v; want none", len(certs.GetCertificates()), err)
	}
	// A request_id is a key within an account: B reusing A's gets an order of its own.
	if own := b.create(t, orderRequest("tenant-a-unpaid", 2, false)); own.GetOrderId() == unpaid.GetOrderId() {
		t.Errorf("account B's CreateOrder with A's request_id returned A's order %s", unpaid.GetOrderId())
	}

	// B's attempts changed nothing of A's.
	resp, err := e.order.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: unpaid.GetOrderId()})
	if err != nil || resp.GetOrder().GetStatus() != orderv1.OrderStatus_ORDER_STATUS_UNPAID {
		t.Errorf("account A's unpaid order after B's attempts: %v, %v; want UNPAID", resp.GetOrder().GetStatus(), err)
	}
}

// A key revoked with the admin command is refused by both services within a few seconds (each
// caches a verified key for -auth-cache-ttl, 2 s by default); other keys keep working.
func TestRevokedKeyIsRefused(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.newCustomer(t, "revoked")
	cl := connect(t, e.Pair, c.key)
	// Both services verify (and cache) the key before it is revoked.
	if _, err := cl.order.ListOrders(t.Context(), &orderv1.ListOrdersRequest{}); err != nil {
		t.Fatalf("order service refuses a fresh key: %v", err)
	}
	if _, err := cl.lifecycle.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{}); err != nil {
		t.Fatalf("lifecycle service refuses a fresh key: %v", err)
	}

	e.admin(t, "revoke-key", "-key", c.keyID)
	revoked := time.Now()
	waitFor(t, 10*time.Second, func() error {
		_, errOrder := cl.order.ListOrders(t.Context(), &orderv1.ListOrdersRequest{})
		_, errLifecycle := cl.lifecycle.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{})
		if status.Code(errOrder) != codes.Unauthenticated || status.Code(errLifecycle) != codes.Unauthenticated {
			return fmt.Errorf("revoked key: order service says %v, lifecycle service says %v; want Unauthenticated from both",
				status.Code(errOrder), status.Code(errLifecycle))
		}
		return nil
	})
	t.Logf("revoked key refused by both services after %v", time.Since(revoked).Round(time.Millisecond))

	if _, err := e.order.ListOrders(t.Context(), &orderv1.ListOrdersRequest{}); err != nil {
		t.Errorf("the demo key stopped working too: %v", err)
	}
}

// Health checking and server reflection answer without a key (load balancers, grpcurl); the
// services' own methods do not.
func TestHealthAndReflectionNeedNoKey(t *testing.T) {
	t.Parallel()
	e := start(t)
	for _, tc := range []struct {
		service, addr string
		own           func(context.Context, *grpc.ClientConn) error // one of the service's own calls
	}{
		{orderv1.OrderService_ServiceDesc.ServiceName, e.OrderAddr, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := orderv1.NewOrderServiceClient(conn).ListProducts(ctx, &orderv1.ListProductsRequest{})
			return err
		}},
		{lifecyclev1.LifecycleService_ServiceDesc.ServiceName, e.LifecycleAddr, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := lifecyclev1.NewLifecycleServiceClient(conn).ListBundles(ctx, &lifecyclev1.ListBundlesRequest{})
			return err
		}},
	} {
		t.Run(tc.service, func(t *testing.T) {
			conn := dial(t, tc.addr, "")
			h, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health Check = %v, %v; want SERVING", h.GetStatus(), err)
			}
			services := listServices(t, reflectionpb.NewServerReflectionClient(conn))
			for _, want := range []string{tc.service, healthpb.Health_ServiceDesc.ServiceName} {
				if !slices.Contains(services, want) {
					t.Errorf("reflection lists %q, want it to include %s", services, want)
				}
			}
			wantCode(t, "a call of "+tc.service+" without a key", tc.own(t.Context(), conn), codes.Unauthenticated)
		})
	}
}

// listServices asks a server's reflection service which services it offers.
func listServices(t *testing.T, c reflectionpb.ServerReflectionClient) []string {
	t.Helper()
	stream, err := c.ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatalf("reflection: send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: receive: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names
}
