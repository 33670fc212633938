package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

const token = "localca-plugin-test-token-0123"

// logFile is where a run's log goes: a file, which the logger may write while the test reads.
func logFile(t *testing.T, dir string) (*os.File, func() string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "plugin.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, func() string { b, _ := os.ReadFile(f.Name()); return string(b) }
}

// files writes what every run needs (the token, with a trailing newline as an editor leaves it,
// and a master key) to dir and returns the flags naming them and a database there.
func files(t *testing.T, dir string) []string {
	t.Helper()
	tokenFile, keyFile := filepath.Join(dir, "token"), filepath.Join(dir, "master.key")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(secrets.Generate()), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"-token-file", tokenFile, "-master-key-file", keyFile, "-db", filepath.Join(dir, "localca.db")}
}

// TestRunMutualTLS runs the binary's run with mutual TLS: a caller with the token and a client
// certificate from the PKI gets a certificate issued, which verifies against the root written to
// -root-file; a caller without a client certificate is refused; health checks need no token.
func TestRunMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki := tlstest.NewCA(t, "plug-in PKI")
	server := pki.Server(t).WriteFiles(t, dir, "server", pki)
	client := pki.Client(t, "certhosting-lifecycle").WriteFiles(t, dir, "client", pki)
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })

	ready, rootFile := filepath.Join(dir, "ready"), filepath.Join(dir, "root.pem")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs, logText := logFile(t, dir)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append(files(t, dir), "-listen", "127.0.0.1:0", "-ready-file", ready, "-root-file", rootFile,
			"-resolver", dnsSrv.Addr(), "-recheck", "1s",
			"-tls-cert-file", server.Cert, "-tls-key-file", server.Key, "-tls-client-ca-file", server.CA), logs)
	}()
	addr := waitReady(t, ready, done, logText)

	creds, err := plugin.ClientTLS(client.CA, client.Cert, client.Key, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := plugin.Dial(plugin.ClientConfig{Address: addr, Token: token, TLS: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Submit(t.Context(), dvRequest(t, "shop.example.com"))
	if err != nil || len(sub.Instructions) != 1 {
		t.Fatalf("Submit over mutual TLS = %+v, %v; want one record to publish", sub, err)
	}
	rec := sub.Instructions[0]
	zone.Set(dns.Fqdn(rec.Name), dns.TypeTXT, &dns.TXT{
		Hdr: dns.RR_Header{Name: dns.Fqdn(rec.Name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{rec.Value}})
	st, err := c.Status(t.Context(), sub.Ref)
	if err != nil || st.State != ca.Issued {
		t.Fatalf("Status after publishing = %+v, %v; want issued", st, err)
	}
	rootPEM, err := os.ReadFile(rootFile)
	if err != nil {
		t.Fatalf("-root-file: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("-root-file holds no certificate:\n%s", rootPEM)
	}
	leaf, inter := tlstest.ParseChain(t, st.ChainPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "shop.example.com", Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("the issued chain does not verify against -root-file: %v", err)
	}

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil ||
		resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check without a token = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	noCert, err := plugin.ClientTLS(client.CA, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := plugin.Dial(plugin.ClientConfig{Address: addr, Token: token, TLS: noCert, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if st, err := stranger.Status(t.Context(), sub.Ref); err == nil {
		t.Errorf("Status without a client certificate = %+v; want the connection refused", st)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if l := logText(); !strings.Contains(l, "mutual_tls=true") || !strings.Contains(l, "certificate issued") {
		t.Errorf("log does not show mutual TLS and the issuance:\n%s", l)
	}
}

// TestRunRefusesBadFlags: flags that cannot work stop the plug-in at start, naming the flag.
func TestRunRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	base := files(t, dir)
	pki := tlstest.NewCA(t, "plug-in PKI")
	server := pki.Server(t).WriteFiles(t, dir, "server", pki)
	short := filepath.Join(dir, "short-token")
	if err := os.WriteFile(short, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"certificate without key", []string{"-tls-cert-file", server.Cert}, "-tls-cert-file and -tls-key-file go together"},
		{"client CA without a certificate", []string{"-tls-client-ca-file", server.CA}, "-tls-client-ca-file needs -tls-cert-file"},
		{"key that does not match", []string{"-tls-cert-file", server.Cert, "-tls-key-file", server.CA}, "-tls-cert-file"},
		{"token too short", []string{"-token-file", short}, "at least 16 bytes"},
		{"token file missing", []string{"-token-file", filepath.Join(dir, "nope")}, "-token-file"},
		{"DNS timeout as long as the escalation window", []string{"-max-validity", "90s", "-dns-timeout", "9s"}, "-dns-timeout 9s: must be positive and shorter"},
		{"DNS timeout of zero", []string{"-dns-timeout", "0s"}, "-dns-timeout 0s: must be positive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, base...), "-listen", "127.0.0.1:0", "-resolver", "127.0.0.1:53"), tc.args...)
			err := run(t.Context(), args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// waitReady waits until run has written its address to the ready file.
func waitReady(t *testing.T, ready string, done <-chan error, logs func() string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return string(b)
		}
		select {
		case err := <-done:
			t.Fatalf("run ended before serving: %v\n%s", err, logs())
		case <-deadline:
			t.Fatalf("not serving after 20s\n%s", logs())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dvRequest is a DV request for domain with a fresh P-256 key.
func dvRequest(t *testing.T, domain string) ca.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: domain}, DNSNames: []string{domain}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Request{ID: "app-" + domain, Domains: []string{domain}, CSR: csr, Validation: "DV", Binding: "bdl-" + domain,
		Contact: ca.Contact{Email: "ops@example.com"}}
}
