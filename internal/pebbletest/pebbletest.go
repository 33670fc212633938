// Package pebbletest runs Let's Encrypt's Pebble ACME test server and pebble-challtestsrv as real
// processes for tests, from the repository's bin/ (`make tools` builds them from the pinned
// modules of tools/go.mod; a test is skipped with that hint when they are missing, and fails when
// the CI environment variable is set, because `make test` builds them first).
//
// What a test gets:
//   - Pebble on free loopback ports, with a config written here (bound to 127.0.0.1, a TLS
//     certificate made for the test, optional External Account Binding and blocked domains) and
//     its fault injection left as Pebble ships it: 5% of good nonces rejected, random validation
//     delays of up to 5 s per attempt, authorizations reused half of the time. Clients must cope.
//   - Pebble's issuing root, fetched from its management API after every start (Pebble makes a new
//     hierarchy each time), to verify issued chains against.
//   - challtestsrv as the customer's DNS (CNAME and TXT records set through its management API).
//   - A forwarding resolver that Pebble's validator asks (its -dnsserver). Pebble sends one TXT
//     query and does not follow CNAMEs, and challtestsrv answers a CNAME only from its own records;
//     the resolver follows a customer's CNAME from challtestsrv to the server of the delegated zone
//     (Options.Delegations), so DNS delegation is tested end to end.
//   - The management calls tests need: the issuing root, forcing an ARI window; and reading the
//     ARI window as a client would, for a test's own view of it.
//
// Every process is tied to the test: stopped by t.Cleanup, killed with the test binary if it dies
// (Linux parent-death signal), and its output shown when the test fails.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// startTimeout bounds how long a process may take to serve.
const startTimeout = 30 * time.Second

// Options configure Start.
type Options struct {
	// EABKeys are External Account Binding keys, key id → base64url HMAC key. With any, Pebble
	// requires External Account Binding.
	EABKeys map[string]string
	// BlockedDomains are refused at new-order with rejectedIdentifier.
	BlockedDomains []string
	// NoAuthzReuse sets PEBBLE_AUTHZREUSE=0. By default Pebble reuses a valid authorization for
	// half of the identifiers; with 0 it still does for 1 in 100 (its check is
	// rand.Intn(100) > percent), so a test that must see a fresh validation (a renewal through the
	// delegation, a failing CNAME) also has its client deactivate the authorizations of each
	// issued order (acme.Config.RelinquishAuthorizations).
	NoAuthzReuse bool
	// Delegations maps a zone ("acme.certhosting.test") to the address of the DNS server
	// authoritative for it; the resolver asks it for names in the zone. More can be added with
	// Pebble.Delegate.
	Delegations map[string]string
}

// Pebble is a running Pebble with its challenge test server and resolver.
type Pebble struct {
	t    testing.TB
	dir  string
	bin  string
	opts Options

	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// TLSRootPEM is the root of the certificate Pebble serves its API with: what a client trusts
	// for DirectoryURL (not the issuing root: see RootPEM).
	TLSRootPEM []byte
	// ChallSrv is the customer's DNS.
	ChallSrv *ChallSrv
	// ResolverAddr is the forwarding resolver Pebble validates through.
	ResolverAddr string

	listen, management string
	resolver           *forwarder
	http               *http.Client

	mu      sync.Mutex
	proc    *process
	rootPEM []byte
}

// Start starts challtestsrv, the resolver and Pebble, waits until they serve, and fetches Pebble's
// issuing root. It skips the test when bin/pebble is missing (fails it in CI: see missing).
func Start(t testing.TB, opts Options) *Pebble {
	t.Helper()
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	for _, name := range []string{"pebble", "pebble-challtestsrv"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			missing(t, filepath.Join(bin, name))
		}
	}
	p := &Pebble{t: t, dir: t.TempDir(), bin: bin, opts: opts}
	p.ChallSrv = startChallSrv(t, filepath.Join(bin, "pebble-challtestsrv"))

	p.resolver = newForwarder(p.ChallSrv.DNSAddr, t)
	for zone, addr := range opts.Delegations {
		p.resolver.delegate(zone, addr)
	}
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: p.resolver})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	p.ResolverAddr = dnsSrv.Addr()

	// Pebble's listeners get a certificate for 127.0.0.1 and localhost from a root made for this
	// test: nothing is read from the module cache.
	tlsCA := tlstest.NewCA(t, "pebbletest root")
	files := tlsCA.Server(t).WriteFiles(t, p.dir, "pebble", tlsCA)
	certFile, keyFile := files.Cert, files.Key
	p.TLSRootPEM = tlsCA.PEM
	p.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsCA.Pool()}}}
	t.Cleanup(p.http.CloseIdleConnections)

	if p.listen, err = pair.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	if p.management, err = pair.FreeAddr(); err != nil {
		t.Fatal(err)
	}
	p.DirectoryURL = "https://" + p.listen + "/dir"
	p.writeConfig(t, certFile, keyFile)
	t.Cleanup(p.Stop)
	p.Restart()
	return p
}

// missing skips the test for a tool that is not built, except in CI (the CI environment variable
// set, as .ci/run's environment and shared/tools/clean-clone-test have it): there `make test`
// builds the tools before it runs the tests, so a missing one means the Pebble tests would silently
// not run, and that is a failure.
func missing(t testing.TB, path string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found, and CI is set: `make test` builds it (make tools) before the tests; the Pebble tests must not be skipped in CI", path)
	}
	t.Skipf("%s not found: run `make tools` to build Pebble (`make test` does)", path)
}

// writeConfig writes pebble.json: Pebble's own test config, bound to loopback, with this test's
// certificate, EAB keys and blocked domains, and short Retry-After hints.
func (p *Pebble) writeConfig(t testing.TB, certFile, keyFile string) {
	type profile struct {
		Description    string `json:"description"`
		ValidityPeriod int    `json:"validityPeriod"`
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  p.listen,
		"managementListenAddress":        p.management,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       5002,
		"tlsPort":                        5001,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": len(p.opts.EABKeys) > 0,
		"externalAccountMACKeys":         p.opts.EABKeys,
		"domainBlocklist":                p.opts.BlockedDomains,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]profile{
			"default":    {"The profile you know and love", 90 * 24 * 3600},
			"shortlived": {"A short-lived cert profile", 6 * 24 * 3600},
		},
	}}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "pebble.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Delegate makes the resolver ask addr for names in zone.
func (p *Pebble) Delegate(zone, addr string) { p.resolver.delegate(zone, addr) }

// Restart starts Pebble (again, after Stop) on the same addresses, waits until it serves and
// fetches its new issuing root. Pebble keeps nothing across a restart: accounts, orders and
// certificates are gone.
func (p *Pebble) Restart() {
	p.t.Helper()
	p.Stop()
	env := []string{}
	for _, kv := range os.Environ() {
		// Pebble's defaults, whatever the developer's shell says: fault injection stays on.
		if !strings.HasPrefix(kv, "PEBBLE_") {
			env = append(env, kv)
		}
	}
	if p.opts.NoAuthzReuse {
		env = append(env, "PEBBLE_AUTHZREUSE=0")
	}
	proc, err := startProcess(p.t, "pebble", filepath.Join(p.bin, "pebble"),
		[]string{"-config", filepath.Join(p.dir, "pebble.json"), "-dnsserver", p.ResolverAddr}, env, p.dir)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.proc = proc
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var root []byte
	err = proc.waitReady(ctx, func(ctx context.Context) error {
		if _, err := p.get(ctx, p.DirectoryURL); err != nil {
			return err
		}
		root, err = p.get(ctx, "https://"+p.management+"/roots/0")
		return err
	})
	if err != nil {
		p.t.Fatalf("pebble: %v\n%s", err, proc.output())
	}
	p.mu.Lock()
	p.rootPEM = root
	p.mu.Unlock()
}

// Stop kills Pebble (challtestsrv and the resolver keep running). Stopping a stopped Pebble does
// nothing.
func (p *Pebble) Stop() {
	p.mu.Lock()
	proc := p.proc
	p.proc = nil
	p.mu.Unlock()
	if proc != nil {
		proc.kill()
	}
}

// RootPEM is the issuing root of the running Pebble, from its management API.
func (p *Pebble) RootPEM() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.rootPEM)
}

// Roots is a pool holding RootPEM, for x509.VerifyOptions.
func (p *Pebble) Roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.RootPEM())
	return pool
}

// Output is Pebble's log so far (since its last start).
func (p *Pebble) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return ""
	}
	return p.proc.output()
}

// SetRenewalInfo forces the ARI answer for a certificate (PEM, leaf first) through the management
// API: the suggested window, and an explanation URL when not empty.
func (p *Pebble) SetRenewalInfo(ctx context.Context, certPEM []byte, start, end time.Time, explanationURL string) error {
	info := map[string]any{"suggestedWindow": map[string]string{
		"start": start.UTC().Format(time.RFC3339), "end": end.UTC().Format(time.RFC3339)}}
	if explanationURL != "" {
		info["explanationURL"] = explanationURL
	}
	ari, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = p.post(ctx, "https://"+p.management+"/set-renewal-info/",
		map[string]string{"Certificate": string(certPEM), "ARIResponse": string(ari)})
	return err
}

// RenewalWindow is Pebble's ARI answer for a certificate (PEM, leaf first), read from its
// directory's renewalInfo resource as any ACME client reads it (RFC 9773): the suggested window. It
// is the test's own view of the window, independent of the client under test.
func (p *Pebble) RenewalWindow(ctx context.Context, certPEM []byte) (start, end time.Time, err error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return start, end, fmt.Errorf("renewal window: no certificate in %q", certPEM)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return start, end, fmt.Errorf("renewal window: %w", err)
	}
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		return start, end, fmt.Errorf("renewal window: %w", err)
	}
	b, err := p.get(ctx, p.DirectoryURL)
	if err != nil {
		return start, end, err
	}
	var dir struct {
		RenewalInfo string `json:"renewalInfo"`
	}
	if err := json.Unmarshal(b, &dir); err != nil || dir.RenewalInfo == "" {
		return start, end, fmt.Errorf("renewal window: the directory names no renewalInfo (%v): %s", err, b)
	}
	if b, err = p.get(ctx, strings.TrimSuffix(dir.RenewalInfo, "/")+"/"+id); err != nil {
		return start, end, err
	}
	var info struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return start, end, fmt.Errorf("renewal window: %w: %s", err, b)
	}
	return info.SuggestedWindow.Start, info.SuggestedWindow.End, nil
}

func (p *Pebble) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return do(p.http, req)
}

func (p *Pebble) post(ctx context.Context, url string, body any) ([]byte, error) {
	return postJSON(ctx, p.http, url, body)
}

// postJSON POSTs body as JSON and returns the answer, or an error for a status other than 200.
func postJSON(ctx context.Context, hc *http.Client, url string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return do(hc, req)
}

func do(hc *http.Client, req *http.Request) ([]byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// Count is how often s occurs in Pebble's output (Pebble logs each request it handles as
// "METHOD /path -> calling handler()"). Pebble's output reaches us through a pipe that a
// goroutine copies, so the line of a request that has just been answered may not be in it yet:
// a check that a request was made uses AwaitCount.
func (p *Pebble) Count(s string) int {
	return strings.Count(p.Output(), s)
}

// AwaitCount is Count once s occurs at least n times, or after five seconds if it does not.
func (p *Pebble) AwaitCount(s string, n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := p.Count(s)
		if c >= n || time.Now().After(deadline) {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CertStatus is Pebble's record of the certificate with this serial (hexadecimal, as
// big.Int.Text(16) writes it), from its management interface: "Valid" or "Revoked", and the
// RFC 5280 reason of a revocation. It is the test's own view, independent of the client under
// test.
func (p *Pebble) CertStatus(ctx context.Context, serialHex string) (status string, reason int, err error) {
	raw, err := p.get(ctx, "https://"+p.management+"/cert-status-by-serial/"+serialHex)
	if err != nil {
		return "", 0, err
	}
	var st struct {
		Status string
		Reason int
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", 0, fmt.Errorf("cert-status-by-serial: %w: %s", err, raw)
	}
	return st.Status, st.Reason, nil
}
