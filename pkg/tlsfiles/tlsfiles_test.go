package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
)

func TestLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:50051", true},
		{"127.1.2.3:0", true},
		{"[::1]:50051", true},
		{"[::1%lo]:50051", true},
		{"localhost:50051", true},
		{"LocalHost.:50051", true},
		{":50051", false},
		{"0.0.0.0:50051", false},
		{"[::]:50051", false},
		{"10.0.0.5:50051", false},
		{"lifecycle.internal:50052", false},
		{"localhost.example:50051", false},
		{"127.0.0.1", false}, // no port: not an address the services take
		{"", false},
	}
	for _, tc := range tests {
		if got := tlsfiles.Loopback(tc.addr); got != tc.want {
			t.Errorf("Loopback(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// TestServerFlags: which flag combinations give TLS, plaintext, or a start refused with the
// flags to set.
func TestServerFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := tlstest.NewCA(t, "test PKI")
	f := pki.Server(t).WriteFiles(t, dir, "server", pki)
	tests := []struct {
		name    string
		flags   tlsfiles.ServerFlags
		listen  string
		wantTLS bool
		wantErr string // empty: no error
	}{
		{"plaintext on 127.0.0.1", tlsfiles.ServerFlags{}, "127.0.0.1:0", false, ""},
		{"plaintext on localhost", tlsfiles.ServerFlags{}, "localhost:50051", false, ""},
		{"plaintext on ::1", tlsfiles.ServerFlags{}, "[::1]:50051", false, ""},
		{"plaintext on every interface", tlsfiles.ServerFlags{}, ":50051", false, "-listen :50051 is not a loopback address"},
		{"plaintext on 0.0.0.0 names the flags", tlsfiles.ServerFlags{}, "0.0.0.0:50051", false, "give -tls-cert and -tls-key (and -tls-client-ca for mutual TLS), or set -insecure-plaintext"},
		{"plaintext beyond loopback, insecure", tlsfiles.ServerFlags{InsecurePlaintext: true}, "0.0.0.0:50051", false, ""},
		{"TLS on every interface", tlsfiles.ServerFlags{Cert: f.Cert, Key: f.Key}, ":50051", true, ""},
		{"mutual TLS", tlsfiles.ServerFlags{Cert: f.Cert, Key: f.Key, ClientCA: f.CA}, ":50051", true, ""},
		{"client CA without TLS", tlsfiles.ServerFlags{ClientCA: f.CA}, "127.0.0.1:0", false, "-tls-client-ca needs -tls-cert and -tls-key"},
		{"certificate without key", tlsfiles.ServerFlags{Cert: f.Cert}, "127.0.0.1:0", false, "-tls-cert and -tls-key go together"},
		{"key without certificate", tlsfiles.ServerFlags{Key: f.Key}, "127.0.0.1:0", false, "-tls-cert and -tls-key go together"},
		{"key of another file", tlsfiles.ServerFlags{Cert: f.Cert, Key: f.CA}, "127.0.0.1:0", false, "-tls-cert, -tls-key:"},
		{"missing certificate", tlsfiles.ServerFlags{Cert: filepath.Join(dir, "nope.crt"), Key: f.Key}, "127.0.0.1:0", false, "no such file"},
		{"client CA file without certificates", tlsfiles.ServerFlags{Cert: f.Cert, Key: f.Key, ClientCA: f.Key}, "127.0.0.1:0", false, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			creds, pair, err := tc.flags.Credentials(tc.listen, tlsfiles.Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Credentials: got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Credentials: %v", err)
			}
			if gotTLS := creds != nil && pair != nil; gotTLS != tc.wantTLS {
				t.Errorf("TLS = %v (credentials %v, pair %v), want %v", gotTLS, creds, pair, tc.wantTLS)
			}
		})
	}
}

func TestClientFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := tlstest.NewCA(t, "test PKI")
	f := pki.Client(t, "certhosting-order").WriteFiles(t, dir, "order", pki)
	tests := []struct {
		name    string
		files   tlsfiles.ClientFiles
		wantTLS bool
		wantErr string
	}{
		{"plaintext", tlsfiles.ClientFiles{}, false, ""},
		{"TLS", tlsfiles.ClientFiles{CA: f.CA}, true, ""},
		{"TLS with a server name", tlsfiles.ClientFiles{CA: f.CA, ServerName: "lifecycle.internal"}, true, ""},
		{"mutual TLS", tlsfiles.ClientFiles{CA: f.CA, Cert: f.Cert, Key: f.Key}, true, ""},
		{"client certificate without a CA", tlsfiles.ClientFiles{Cert: f.Cert, Key: f.Key}, false, "needs the CA file"},
		{"server name without a CA", tlsfiles.ClientFiles{ServerName: "x"}, false, "needs the CA file"},
		{"certificate without key", tlsfiles.ClientFiles{CA: f.CA, Cert: f.Cert}, false, "go together"},
		{"key that does not match", tlsfiles.ClientFiles{CA: f.CA, Cert: f.Cert, Key: f.CA}, false, "client certificate:"},
		{"CA file without certificates", tlsfiles.ClientFiles{CA: f.Key}, false, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			creds, err := tc.files.Credentials(tlsfiles.Options{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Credentials: got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Credentials: %v", err)
			}
			if (creds != nil) != tc.wantTLS {
				t.Errorf("TLS = %v, want %v", creds != nil, tc.wantTLS)
			}
		})
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.b.String()
	s.b.Reset()
	return out
}

// TestKeyPairReload: a KeyPair serves the files' new pair once they changed and the interval has
// passed, and keeps the pair it has, with one warning per change, while the files do not load.
func TestKeyPairReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, other := tlstest.NewCA(t, "test PKI"), tlstest.NewCA(t, "another PKI")
	first, second, third := pki.Server(t), other.Server(t), pki.Server(t)
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	write := func(file string, b []byte) {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, first.CertPEM)
	write(keyFile, first.KeyPEM)
	clk := clockwork.NewFakeClockAt(time.Now())
	var logs syncBuffer
	pair, err := tlsfiles.LoadKeyPair(certFile, keyFile, tlsfiles.Options{Clock: clk, Interval: time.Second,
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	expired := expiredPair(t)

	// Each step changes the files (or not), moves the clock, and names the pair then served and
	// what the log says.
	steps := []struct {
		name    string
		change  func()
		advance time.Duration
		want    tlstest.Pair
		wantLog string // empty: nothing logged
	}{
		{"unchanged", func() {}, 2 * time.Second, first, ""},
		{"changed, within the interval", func() { write(certFile, second.CertPEM); write(keyFile, second.KeyPEM) }, 0, first, ""},
		{"changed, after the interval", func() {}, time.Second, second, "TLS certificate reloaded"},
		{"certificate replaced, key not yet", func() { write(certFile, third.CertPEM) }, time.Second, second, "do not load; keeping the previous certificate"},
		{"the same broken pair warns once", func() {}, time.Second, second, ""},
		{"the key lands", func() { write(keyFile, third.KeyPEM) }, time.Second, third, "TLS certificate reloaded"},
		{"certificate file removed", func() { os.Remove(certFile) }, time.Second, third, "no such file"},
		{"garbage certificate", func() { write(certFile, []byte("not PEM")) }, time.Second, third, "do not load"},
		{"expired certificate", func() { write(certFile, expired.CertPEM); write(keyFile, expired.KeyPEM) }, time.Second, third, "expired at"},
		{"a good pair again", func() { write(certFile, first.CertPEM); write(keyFile, first.KeyPEM) }, time.Second, first, "TLS certificate reloaded"},
	}
	for _, s := range steps {
		s.change()
		clk.Advance(s.advance)
		got, err := pair.Certificate()
		if err != nil {
			t.Fatalf("%s: Certificate: %v", s.name, err)
		}
		if want := s.want.TLS(t); !bytes.Equal(got.Certificate[0], want.Certificate[0]) {
			t.Errorf("%s: served serial %x, want %x", s.name, got.Leaf.SerialNumber, want.Leaf.SerialNumber)
		}
		log := logs.take()
		if s.wantLog == "" && log != "" || !strings.Contains(log, s.wantLog) {
			t.Errorf("%s: logged %q, want %q", s.name, log, s.wantLog)
		}
	}
}

// expiredPair is a certificate that ended an hour ago, with its key.
func expiredPair(t *testing.T) tlstest.Pair {
	t.Helper()
	dir := t.TempDir()
	if err := tlsfiles.TestPKI(dir, nil, "x", time.Now().Add(-tlsfiles.TestPKIValidity-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	return tlstest.Pair{CertPEM: readFile(t, filepath.Join(dir, tlsfiles.ServerCertFile)), KeyPEM: readFile(t, filepath.Join(dir, tlsfiles.ServerKeyFile))}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMutualTLSHandshake: a server from ServerConfig with a client CA accepts a client whose
// certificate that CA signed (from ClientConfig), and refuses one without a certificate or with
// another CA's; the client verifies the server against its CA file and the expected name.
func TestMutualTLSHandshake(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki, other := tlstest.NewCA(t, "test PKI"), tlstest.NewCA(t, "another PKI")
	server := pki.Server(t).WriteFiles(t, dir, "server", pki)
	order := pki.Client(t, "certhosting-order").WriteFiles(t, dir, "order", pki)
	stranger := other.Client(t, "stranger").WriteFiles(t, dir, "stranger", other)
	pair, err := tlsfiles.LoadKeyPair(server.Cert, server.Key, tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsfiles.ServerConfig(pair, server.CA)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()

	tests := []struct {
		name             string
		ca, cert, key    string
		serverName       string
		ok               bool
		wantClientLeafCN string
	}{
		{"client certificate from the server's client CA", server.CA, order.Cert, order.Key, "", true, "certhosting-order"},
		{"expecting the name localhost", server.CA, order.Cert, order.Key, "localhost", true, "certhosting-order"},
		{"no client certificate", server.CA, "", "", "", false, ""},
		{"client certificate from another CA", server.CA, stranger.Cert, stranger.Key, "", false, ""},
		{"server not trusted", stranger.CA, order.Cert, order.Key, "", false, ""},
		{"server certificate not for the name", server.CA, order.Cert, order.Key, "lifecycle.internal", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var clientPair *tlsfiles.KeyPair
			if tc.cert != "" {
				var err error
				if clientPair, err = tlsfiles.LoadKeyPair(tc.cert, tc.key, tlsfiles.Options{}); err != nil {
					t.Fatal(err)
				}
			}
			ccfg, err := tlsfiles.ClientConfig(tc.ca, tc.serverName, clientPair)
			if err != nil {
				t.Fatal(err)
			}
			if ccfg.ServerName == "" {
				ccfg.ServerName = "127.0.0.1"
			}
			conn, err := tls.Dial("tcp", lis.Addr().String(), ccfg)
			if err == nil {
				// With TLS 1.3 the server's verdict on the client's certificate arrives with the
				// first read.
				defer conn.Close()
				_, err = conn.Read(make([]byte, 2))
			}
			if (err == nil) != tc.ok {
				t.Fatalf("handshake and read: %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestTestPKI: tls-init's files: a server certificate for loopback and the hosts given, the order
// service's and the tools' client certificates, all verifying against ca.crt for their use; keys
// 0600.
func TestTestPKI(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	now := time.Now()
	if err := tlsfiles.TestPKI(dir, []string{"certs.internal", "10.1.2.3"}, "order-7", now); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	roots, err := tlsfiles.CertPool(filepath.Join(dir, tlsfiles.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	load := func(certFile, keyFile string) *x509.Certificate {
		t.Helper()
		fi, err := os.Stat(filepath.Join(dir, keyFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", keyFile, fi.Mode(), err)
		}
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf
	}
	server := load(tlsfiles.ServerCertFile, tlsfiles.ServerKeyFile)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "certs.internal", "10.1.2.3"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "elsewhere.example", CurrentTime: now}); err == nil {
		t.Error("server certificate verifies for elsewhere.example")
	}
	for _, c := range []struct{ cert, key, name string }{
		{tlsfiles.OrderCertFile, tlsfiles.OrderKeyFile, "order-7"},
		{tlsfiles.ClientCertFile, tlsfiles.ClientKeyFile, tlsfiles.ClientIdentity},
	} {
		leaf := load(c.cert, c.key)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", c.cert, err)
		}
		if leaf.Subject.CommonName != c.name || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != c.name {
			t.Errorf("%s names CN %q, DNS %v; want %q as both", c.cert, leaf.Subject.CommonName, leaf.DNSNames, c.name)
		}
	}
}
