package plugin_test

import (
	"crypto/tls"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
)

// TestMutualTLS: a plug-in that requires client certificates from its CA serves a client that
// presents one and trusts the plug-in's CA; every other client's calls fail (try again), with no
// verdict.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	pki, other := tlstest.NewCA(t, "plug-in PKI"), tlstest.NewCA(t, "another PKI")
	server := pki.Server(t)
	addr := serve(t, &rawPlugin{status: pendingAnswer}, grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{server.TLS(t)}, ClientCAs: pki.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	})))
	lifecycle, stranger := pki.Client(t, "certhosting-lifecycle").TLS(t), other.Client(t, "stranger").TLS(t)

	tests := []struct {
		name string
		tls  *tls.Config // nil: plaintext
		ok   bool
	}{
		{"client certificate from the plug-in's PKI", &tls.Config{RootCAs: pki.Pool(), Certificates: []tls.Certificate{lifecycle}}, true},
		{"no client certificate", &tls.Config{RootCAs: pki.Pool()}, false},
		{"client certificate from another PKI", &tls.Config{RootCAs: pki.Pool(), Certificates: []tls.Certificate{stranger}}, false},
		{"client does not trust the plug-in's certificate", &tls.Config{RootCAs: other.Pool(), Certificates: []tls.Certificate{lifecycle}}, false},
		{"plaintext", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := plugin.ClientConfig{Address: addr}
			if tc.tls != nil {
				cfg.TLS = credentials.NewTLS(tc.tls)
			}
			c := dial(t, cfg)
			st, err := c.Status(t.Context(), "ref-1")
			if tc.ok && (err != nil || st.State != ca.Pending) {
				t.Errorf("Status = %+v, %v; want pending", st, err)
			}
			if !tc.ok && (err == nil || st.State != 0) {
				t.Errorf("Status = %+v, %v; want an error and no verdict", st, err)
			}
		})
	}
}
