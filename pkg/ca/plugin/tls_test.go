package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
)

// TestMutualTLS: a plug-in that requires client certificates from its PKI (ServerTLS with a
// client CA file) serves a client that presents one and verifies the plug-in (ClientTLS); every
// other client's calls fail (try again), with no verdict. A plug-in without a client CA file
// serves TLS clients without certificates.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, other := tlstest.NewCA(t, "plug-in PKI"), tlstest.NewCA(t, "another PKI")
	server := pki.Server(t).WriteFiles(t, dir, "server", pki)
	lifecycle := pki.Client(t, "certhosting-lifecycle").WriteFiles(t, dir, "lifecycle", pki)
	stranger := other.Client(t, "stranger").WriteFiles(t, dir, "stranger", other)
	mtls, err := plugin.ServerTLS(server.Cert, server.Key, server.CA)
	if err != nil {
		t.Fatal(err)
	}
	tlsOnly, err := plugin.ServerTLS(server.Cert, server.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	mtlsAddr := serve(t, &rawPlugin{status: pendingAnswer}, grpc.Creds(mtls))
	tlsAddr := serve(t, &rawPlugin{status: pendingAnswer}, grpc.Creds(tlsOnly))

	tests := []struct {
		name                                string
		addr                                string
		caFile, certFile, keyFile, hostname string // ClientTLS's arguments; no caFile: plaintext
		ok                                  bool
	}{
		{"client certificate from the plug-in's PKI", mtlsAddr, lifecycle.CA, lifecycle.Cert, lifecycle.Key, "", true},
		{"the same, verifying the name localhost", mtlsAddr, lifecycle.CA, lifecycle.Cert, lifecycle.Key, "localhost", true},
		{"no client certificate", mtlsAddr, lifecycle.CA, "", "", "", false},
		{"client certificate from another PKI", mtlsAddr, lifecycle.CA, stranger.Cert, stranger.Key, "", false},
		{"client does not trust the plug-in's certificate", mtlsAddr, stranger.CA, lifecycle.Cert, lifecycle.Key, "", false},
		{"the plug-in's certificate is not for the name expected", mtlsAddr, lifecycle.CA, lifecycle.Cert, lifecycle.Key, "plugin.example", false},
		{"plaintext", mtlsAddr, "", "", "", "", false},
		{"TLS without client certificates: a client without one", tlsAddr, lifecycle.CA, "", "", "", true},
		{"TLS without client certificates: plaintext", tlsAddr, "", "", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			creds, err := plugin.ClientTLS(tc.caFile, tc.certFile, tc.keyFile, tc.hostname)
			if err != nil {
				t.Fatalf("ClientTLS: %v", err)
			}
			c := dial(t, plugin.ClientConfig{Address: tc.addr, TLS: creds})
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

// TestTLSFiles: files that cannot make TLS work are refused when the configuration is read, with
// what is wrong, rather than at the first handshake.
func TestTLSFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := tlstest.NewCA(t, "plug-in PKI")
	f := pki.Server(t).WriteFiles(t, dir, "server", pki)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name string
		make func() (credentials.TransportCredentials, error)
		want string
	}{
		{"client: certificate without a CA file", func() (credentials.TransportCredentials, error) {
			return plugin.ClientTLS("", f.Cert, f.Key, "")
		}, "needs the CA file"},
		{"client: CA file missing", func() (credentials.TransportCredentials, error) { return plugin.ClientTLS(missing, "", "", "") }, "missing.pem"},
		{"client: CA file without a certificate", func() (credentials.TransportCredentials, error) {
			return plugin.ClientTLS(garbage, "", "", "")
		}, "holds no PEM certificate"},
		{"client: key missing", func() (credentials.TransportCredentials, error) { return plugin.ClientTLS(f.CA, f.Cert, "", "") }, "client certificate"},
		{"server: certificate missing", func() (credentials.TransportCredentials, error) { return plugin.ServerTLS(missing, f.Key, "") }, "server certificate"},
		{"server: key does not match", func() (credentials.TransportCredentials, error) { return plugin.ServerTLS(f.Cert, f.CA, "") }, "server certificate"},
		{"server: client CA file without a certificate", func() (credentials.TransportCredentials, error) {
			return plugin.ServerTLS(f.Cert, f.Key, garbage)
		}, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.make(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
	if creds, err := plugin.ClientTLS("", "", "", ""); creds != nil || err != nil {
		t.Errorf("ClientTLS without files = %v, %v; want plaintext (nil) and no error", creds, err)
	}
}
