package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
)

// tlsInit runs `certhosting-lifecycle tls-init -dir dir` and returns a function naming its files.
func tlsInit(t *testing.T, dir string) func(name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: runs the built binaries; skipped with -short")
	}
	if out, err := exec.CommandContext(t.Context(), bins.Lifecycle, "tls-init", "-dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("tls-init: %v\n%s", err, out)
	}
	return func(name string) string { return filepath.Join(dir, name) }
}

// mutualTLSArgs are the flags of a pair whose lifecycle service requires client certificates and
// whose order service serves TLS and calls the lifecycle service with its client certificate,
// from tls-init's files.
func mutualTLSArgs(f func(string) string) pair.Options {
	return pair.Options{
		LifecycleArgs: []string{"-tls-cert", f(tlsfiles.ServerCertFile), "-tls-key", f(tlsfiles.ServerKeyFile), "-tls-client-ca", f(tlsfiles.CAFile)},
		OrderArgs: []string{"-tls-cert", f(tlsfiles.ServerCertFile), "-tls-key", f(tlsfiles.ServerKeyFile),
			"-lifecycle-ca", f(tlsfiles.CAFile), "-lifecycle-tls-cert", f(tlsfiles.OrderCertFile), "-lifecycle-tls-key", f(tlsfiles.OrderKeyFile)},
	}
}

// dialTLS connects to addr over TLS with the files (a CA, and a client certificate for mutual
// TLS), sending key as the bearer credential unless it is empty.
func dialTLS(t *testing.T, addr, key string, files tlsfiles.ClientFiles) *grpc.ClientConn {
	t.Helper()
	creds, err := files.Credentials(tlsfiles.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dialCreds(t, addr, key, creds)
}

func dialCreds(t *testing.T, addr, key string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithUnaryInterceptor(callTimeout)}
	if key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerCredentials(key)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestMutualTLSPair: both services on TLS from tls-init's files, the lifecycle service requiring
// client certificates. A purchase is delivered (the relay's CreateBundle over mutual TLS, with the
// order service's certificate) and its bundle names the order; the service key with another
// client certificate is PermissionDenied; plaintext and TLS without a client certificate do not
// reach the lifecycle service; grpcurl -cacert talks to the order service.
func TestMutualTLSPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := tlsInit(t, filepath.Join(dir, "tls"))
	opts := mutualTLSArgs(f)
	opts.Dir = dir
	e := startWith(t, opts)
	ca := f(tlsfiles.CAFile)
	tool := tlsfiles.ClientFiles{CA: ca, Cert: f(tlsfiles.ClientCertFile), Key: f(tlsfiles.ClientKeyFile)}
	orderCert := tlsfiles.ClientFiles{CA: ca, Cert: f(tlsfiles.OrderCertFile), Key: f(tlsfiles.OrderKeyFile)}
	c := clients{
		order:     orderv1.NewOrderServiceClient(dialTLS(t, e.OrderAddr, e.DemoKey, tlsfiles.ClientFiles{CA: ca})),
		lifecycle: lifecyclev1.NewLifecycleServiceClient(dialTLS(t, e.LifecycleAddr, e.DemoKey, tool)),
	}

	o := c.buy(t, "tls-1", 3, true)
	got, err := c.lifecycle.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
	if err != nil {
		t.Fatalf("GetBundle: %v", err)
	}
	if got.GetBundle().GetOrderId() != o.GetOrderId() || len(got.GetBundle().GetCertificates()) != 3 {
		t.Errorf("bundle names order %q with %d certificates, want %q with 3", got.GetBundle().GetOrderId(),
			len(got.GetBundle().GetCertificates()), o.GetOrderId())
	}

	serviceKey, err := auth.ReadKeyFile(e.ServiceKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	asTool := lifecyclev1.NewLifecycleServiceClient(dialTLS(t, e.LifecycleAddr, serviceKey, tool))
	asOrder := lifecyclev1.NewLifecycleServiceClient(dialTLS(t, e.LifecycleAddr, serviceKey, orderCert))
	now := time.Now()
	req := &lifecyclev1.CreateBundleRequest{
		BundleId: ids.New(ids.Bundle, now), AccountId: got.GetBundle().GetAccountId(), OrderId: ids.New(ids.Order, now),
		Product: &lifecyclev1.ProductSnapshot{ProductId: "dv-single", ValidationType: lifecyclev1.ValidationType_VALIDATION_TYPE_DV,
			DomainType: lifecyclev1.DomainType_DOMAIN_TYPE_SINGLE},
		DomainCount: 1, SubscriptionYears: 1,
	}
	_, err = asTool.CreateBundle(t.Context(), req)
	wantCode(t, "CreateBundle with the service key and the tools' certificate", err, codes.PermissionDenied)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "certhosting-order") || !strings.Contains(msg, tlsfiles.ClientIdentity) {
		t.Errorf("refusal %q does not name the identity wanted and the one given", msg)
	}
	_, err = asTool.CancelBundle(t.Context(), &lifecyclev1.CancelBundleRequest{BundleId: o.GetBundleId(), AccountId: got.GetBundle().GetAccountId(), OrderId: o.GetOrderId()})
	wantCode(t, "CancelBundle with the service key and the tools' certificate", err, codes.PermissionDenied)
	if _, err := asOrder.CreateBundle(t.Context(), req); err != nil {
		t.Errorf("CreateBundle with the service key and the order service's certificate: %v", err)
	}

	plain := lifecyclev1.NewLifecycleServiceClient(dialCreds(t, e.LifecycleAddr, e.DemoKey, insecure.NewCredentials()))
	_, err = plain.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
	wantCode(t, "plaintext to the TLS lifecycle service", err, codes.Unavailable)
	noCert := lifecyclev1.NewLifecycleServiceClient(dialTLS(t, e.LifecycleAddr, e.DemoKey, tlsfiles.ClientFiles{CA: ca}))
	_, err = noCert.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
	wantCode(t, "TLS without a client certificate to the lifecycle service", err, codes.Unavailable)

	grpcurl := grpcurlPath(t)
	out, err := exec.CommandContext(t.Context(), grpcurl, "-cacert", ca, "-H", "authorization: Bearer "+e.DemoKey,
		e.OrderAddr, "certhosting.order.v1.OrderService/ListProducts").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"productId": "dv-single"`) {
		t.Errorf("grpcurl -cacert ListProducts: %v\n%s", err, out)
	}
	out, err = exec.CommandContext(t.Context(), grpcurl, "-cacert", ca, "-cert", tool.Cert, "-key", tool.Key,
		e.LifecycleAddr, "grpc.health.v1.Health/Check").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"status": "SERVING"`) {
		t.Errorf("grpcurl -cacert -cert -key Health/Check: %v\n%s", err, out)
	}
	if out, err := exec.CommandContext(t.Context(), grpcurl, "-plaintext", e.OrderAddr, "list").CombinedOutput(); err == nil {
		t.Errorf("grpcurl -plaintext to the TLS order service succeeded:\n%s", out)
	}
}

// grpcurlPath is bin/grpcurl (make tools), or the test skips (fails under CI) without it.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "bin", "grpcurl")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bin/grpcurl is not built, and CI is set: `make test` builds it (make tools) before the tests")
		}
		t.Skip("bin/grpcurl is not built: run `make tools`")
	}
	return p
}

// TestCertificateReload: the order service's certificate files replaced on disk (by another CA's
// pair) are served to new connections within seconds, by the same process; a pair that does not
// load is logged and the last good one kept.
func TestCertificateReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := tlstest.NewCA(t, "first PKI"), tlstest.NewCA(t, "second PKI")
	files := first.Server(t).WriteFiles(t, dir, "server", first)
	e := startWith(t, pair.Options{Dir: dir, OrderArgs: []string{"-tls-cert", files.Cert, "-tls-key", files.Key}})
	pid := e.OrderPID()
	both := first.Pool()
	both.AppendCertsFromPEM(second.PEM)
	// served is the serial of the certificate a new connection gets.
	served := func() (string, error) {
		conn, err := tls.Dial("tcp", e.OrderAddr, &tls.Config{RootCAs: both, NextProtos: []string{"h2"}})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
	}
	serialOf := func(p tlstest.Pair) string { return p.TLS(t).Leaf.SerialNumber.String() }
	until := func(want, what string) {
		t.Helper()
		waitFor(t, 10*time.Second, func() error {
			got, err := served()
			if err == nil && got != want {
				return &mismatch{what: what, got: got, want: want}
			}
			return err
		})
	}

	cur, err := served()
	if err != nil {
		t.Fatal(err)
	}
	if want := certSerial(t, files.Cert); cur != want {
		t.Fatalf("serving serial %s, want the file's %s", cur, want)
	}

	renewed := second.Server(t)
	replaceFile(t, files.Key, renewed.KeyPEM)
	replaceFile(t, files.Cert, renewed.CertPEM)
	until(serialOf(renewed), "after the files were replaced")
	// Calls work with only the new CA trusted.
	onlySecond := credentials.NewTLS(&tls.Config{RootCAs: second.Pool()})
	if _, err := orderv1.NewOrderServiceClient(dialCreds(t, e.OrderAddr, e.DemoKey, onlySecond)).
		ListProducts(t.Context(), &orderv1.ListProductsRequest{}); err != nil {
		t.Errorf("ListProducts trusting the new CA only: %v", err)
	}

	replaceFile(t, files.Cert, []byte("not a certificate"))
	// The files are looked at from a handshake: each try connects.
	waitFor(t, 10*time.Second, func() error {
		if got, err := served(); err != nil || got != serialOf(renewed) {
			t.Fatalf("after a broken file: serving %s, %v; want the last good one, %s", got, err, serialOf(renewed))
		}
		if !strings.Contains(e.Logs(), "keeping the previous certificate") {
			return errString("no warning about the broken files yet")
		}
		return nil
	})
	if e.OrderPID() != pid {
		t.Errorf("order service pid %d, was %d: restarted", e.OrderPID(), pid)
	}
}

type mismatch struct{ what, got, want string }

func (m *mismatch) Error() string {
	return "serving serial " + m.got + " " + m.what + ", want " + m.want
}

type errString string

func (e errString) Error() string { return string(e) }

func certSerial(t *testing.T, file string) string {
	t.Helper()
	return tlstest.Certs(t, readFileT(t, file))[0].SerialNumber.String()
}

func readFileT(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func replaceFile(t *testing.T, file string, b []byte) {
	t.Helper()
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPlaintextBeyondLoopbackRefused: a service told to listen beyond loopback (or the order
// service to call a lifecycle service beyond it) without TLS refuses to start, naming the flags;
// -insecure-plaintext lets it past that check.
func TestPlaintextBeyondLoopbackRefused(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("e2e: runs the built binaries; skipped with -short")
	}
	tests := []struct {
		name    string
		bin     string
		args    []string
		want    []string // in the error
		refused bool
	}{
		{"order on every interface", bins.Order, []string{"-listen", ":0"}, []string{"-listen :0 is not a loopback address", "-tls-cert", "-insecure-plaintext"}, true},
		{"order on 0.0.0.0", bins.Order, []string{"-listen", "0.0.0.0:0"}, []string{"-listen 0.0.0.0:0 is not a loopback address"}, true},
		{"lifecycle on 0.0.0.0", bins.Lifecycle, []string{"-listen", "0.0.0.0:0"}, []string{"-listen 0.0.0.0:0 is not a loopback address", "-tls-key", "-tls-client-ca"}, true},
		{"order calling a lifecycle service beyond loopback", bins.Order, []string{"-listen", "127.0.0.1:0", "-lifecycle-addr", "127.0.0.1:1,10.9.9.9:50052"},
			[]string{"-lifecycle-addr 10.9.9.9:50052 is not a loopback address", "-lifecycle-ca", "-insecure-plaintext"}, true},
		// Past the check, the next thing a service needs is missing in the empty directory.
		{"order, -insecure-plaintext", bins.Order, []string{"-listen", "0.0.0.0:0", "-insecure-plaintext", "-lifecycle-addr", "10.9.9.9:50052"}, []string{"-lifecycle-key-file"}, false},
		{"lifecycle, -insecure-plaintext", bins.Lifecycle, []string{"-listen", "0.0.0.0:0", "-insecure-plaintext", "-crl-listen", ""}, []string{"master key"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, tc.bin, append(tc.args, "-identity-db", filepath.Join(dir, "identity.db"))...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if err == nil {
				t.Fatalf("started and exited cleanly; want an error\n%s", &stderr)
			}
			out := stderr.String()
			if refused := strings.Contains(out, "is not a loopback address"); refused != tc.refused {
				t.Errorf("refused for plaintext: %v, want %v\n%s", refused, tc.refused, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not say %q:\n%s", w, out)
				}
			}
		})
	}
}
