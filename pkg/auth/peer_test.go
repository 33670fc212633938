package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
)

// TestServiceIdentity: with WithServiceIdentity, a service key counts only on a connection whose
// verified client certificate names the identity (DNS name or CommonName); customers are not
// affected; without it, the key alone is enough, as before.
func TestServiceIdentity(t *testing.T) {
	t.Parallel()
	st, clk := newStore(t, dbtest.FromEnv(t))
	service := grpctest.NewCaller(t, st, "service", auth.RoleService)
	customer := grpctest.NewCaller(t, st, "customer", auth.RoleOwner)
	verifier := auth.NewVerifier(st, clk, time.Minute)
	bound := auth.NewInterceptor(verifier, testPolicy, auth.Limits{}).WithServiceIdentity("certhosting-order")
	unbound := auth.NewInterceptor(verifier, testPolicy, auth.Limits{})

	verified := func(c *x509.Certificate) credentials.AuthInfo {
		return credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c}}}}
	}
	named := func(cn string, dns ...string) credentials.AuthInfo {
		return verified(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns})
	}
	presented := credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "certhosting-order"}}}}}
	create, get := lifecyclev1.LifecycleService_CreateBundle_FullMethodName, lifecyclev1.LifecycleService_GetBundle_FullMethodName

	tests := []struct {
		name        string
		interceptor *auth.Interceptor
		key         string
		method      string
		authInfo    credentials.AuthInfo // nil: plaintext
		want        codes.Code
		wantMsg     string
	}{
		{"CommonName names the order service", bound, service.Key, create, named("certhosting-order"), codes.OK, ""},
		{"DNS name names the order service", bound, service.Key, create, named("order-7", "certhosting-order"), codes.OK, ""},
		{"another name", bound, service.Key, create, named("certhosting-client", "certhosting-client"), codes.PermissionDenied,
			`CreateBundle is for certhosting-order only: the connection's client certificate names ["certhosting-client"]`},
		{"a name that only contains it", bound, service.Key, create, named("certhosting-order.evil", "x.certhosting-order"), codes.PermissionDenied, "is for certhosting-order only"},
		{"plaintext", bound, service.Key, create, nil, codes.PermissionDenied, "needs the client certificate of certhosting-order (mutual TLS)"},
		{"TLS without a client certificate", bound, service.Key, create, credentials.TLSInfo{}, codes.PermissionDenied, "has none verified"},
		{"a certificate presented, not verified", bound, service.Key, create, presented, codes.PermissionDenied, "has none verified"},
		{"customers need no service certificate", bound, customer.Key, get, named("certhosting-client"), codes.OK, ""},
		{"a customer key with the order service's certificate is still a customer", bound, customer.Key, create, named("certhosting-order"), codes.PermissionDenied, "an owner key may not call CreateBundle"},
		{"without mutual TLS the key is enough", unbound, service.Key, create, nil, codes.OK, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tc.key))
			ctx = peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, AuthInfo: tc.authInfo})
			_, err := tc.interceptor.Unary()(ctx, nil, &grpc.UnaryServerInfo{FullMethod: tc.method},
				func(context.Context, any) (any, error) { return "reached", nil })
			if got := status.Code(err); got != tc.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tc.want)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.wantMsg) {
				t.Errorf("message %q, want it to contain %q", status.Convert(err).Message(), tc.wantMsg)
			}
		})
	}
}
