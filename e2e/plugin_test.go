package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca/caconfig"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// The acceptance criterion: the local CA runs as a separate plug-in process behind
// certhosting.ca.v1 (cmd/certhosting-localca-plugin) and the lifecycle service, routing every
// product to it (-ca-config), completes an issuance through it; killing the plug-in while the
// application is pending leads to retries, not a verdict.
//
// The application is submitted (the plug-in's CA gives the TXT record) and polled at the plug-in;
// the plug-in is SIGKILLed before the record is published, so the application is certainly in
// flight. The lifecycle's polls then fail, and the test waits until it has seen several failures
// in the lifecycle's log while the instance stays VALIDATING, the application PENDING, and no
// support case is opened. The plug-in restarts on the same address and database, the record is
// published, and the instance becomes HOSTED with a chain that verifies against the plug-in
// CA's root (-root-file), with no rejection in its history.
func TestLocalCAPluginKilledMidApplication(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	zone, resolver := testZone(t)
	e, plug := startWithPlugin(t, resolver, nil)
	cert, records := e.applyHosted(t, "plugin-kill", "shop.example.com")
	app := cert.GetCurrentApplication().GetApplicationId()

	// The application is at the plug-in's CA, and the lifecycle service polls it there.
	waitFor(t, 20*time.Second, func() error {
		logs := e.Logs()
		if countLines(logs, "localca-plugin: ", `msg="application submitted"`, "id="+app) != 1 {
			return fmt.Errorf("the plug-in has not logged the submission of %s", app)
		}
		if countLines(logs, "localca-plugin: ", `msg="validation record not found yet"`) == 0 {
			return fmt.Errorf("the plug-in has not been polled for %s yet", app)
		}
		return nil
	})
	submitted := time.Now()

	plug.kill(t)
	const failures = 3
	waitFor(t, 20*time.Second, func() error {
		if c := e.certificate(t, cert.GetCertificateId()); c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING {
			t.Fatalf("with the plug-in down the instance became %v (application %v: %v %q); an outage must not be a verdict",
				c.GetState(), c.GetCurrentApplication().GetStatus(), c.GetCurrentApplication().GetRejectionReason(),
				c.GetCurrentApplication().GetRejectionMessage())
		}
		if n := countLines(e.Logs(), "lifecycle: ", `msg="CA call failed; will retry"`, "application_id="+app); n < failures {
			return fmt.Errorf("the lifecycle service logged %d failed calls to the plug-in for %s, want %d", n, app, failures)
		}
		return nil
	})
	down := time.Since(submitted)
	// Polls failed, and none of them became a verdict.
	e.wantInFlight(t, cert.GetCertificateId())

	plug.restart(t)
	zone.publish(t, records)
	hosted := e.waitHosted(t, cert.GetCertificateId(), 30*time.Second)
	plug.verifyChain(t, hosted, "shop.example.com")
	e.wantNoVerdict(t, cert.GetCertificateId())
	if n := countLines(e.Logs(), "lifecycle: ", `msg="CA call failed; will retry"`, "application_id="+app); n < failures {
		t.Errorf("the lifecycle log has %d failed calls for %s, want at least %d", n, app, failures)
	}
	t.Logf("submitted and polled at the plug-in after %v; %d failed polls in %v with the plug-in down; HOSTED %v after the restart; %v in all",
		submitted.Sub(begin).Round(time.Millisecond), failures, down.Round(time.Millisecond),
		time.Since(submitted.Add(down)).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
}

// The lifecycle service reaches the plug-in over mutual TLS (tls_ca_file, tls_cert_file and
// tls_key_file in -ca-config; -tls-* flags on the plug-in) and gets a certificate through it.
func TestLocalCAPluginMutualTLS(t *testing.T) {
	t.Parallel()
	zone, resolver := testZone(t)
	e, plug := startWithPlugin(t, resolver, func(t *testing.T, dir string, a *caconfig.Authority) []string {
		pki := tlstest.NewCA(t, "plug-in PKI")
		server := pki.Server(t).WriteFiles(t, dir, "plugin-server", pki)
		client := pki.Client(t, "certhosting-lifecycle").WriteFiles(t, dir, "lifecycle-client", pki)
		a.TLSCAFile, a.TLSCertFile, a.TLSKeyFile, a.TLSServerName = client.CA, client.Cert, client.Key, "localhost"
		return []string{"-tls-cert-file", server.Cert, "-tls-key-file", server.Key, "-tls-client-ca-file", server.CA}
	})
	cert, records := e.applyHosted(t, "plugin-mtls", "tls.example.com")
	zone.publish(t, records)
	hosted := e.waitHosted(t, cert.GetCertificateId(), 30*time.Second)
	plug.verifyChain(t, hosted, "tls.example.com")
	if countLines(e.Logs(), "localca-plugin: ", `msg="local CA plug-in listening"`, "mutual_tls=true") != 1 {
		t.Error("the plug-in's log does not show it serving mutual TLS")
	}

	// Revoked through the plug-in's Revoke (the plug-in's CA records it), and replaced through it.
	serial := hosted.GetCurrentIssuance().GetSerialNumber()
	resp, err := e.lifecycle.RevokeCertificate(t.Context(), &lifecyclev1.RevokeCertificateRequest{CertificateId: cert.GetCertificateId(),
		Reason: lifecyclev1.RevocationReason_REVOCATION_REASON_SUPERSEDED})
	if err != nil {
		t.Fatalf("RevokeCertificate through the plug-in: %v", err)
	}
	if st := resp.GetCertificate().GetState(); st != lifecyclev1.CertificateState_CERTIFICATE_STATE_REVOKED {
		t.Errorf("after RevokeCertificate the instance is %v, want REVOKED", st)
	}
	if countLines(e.Logs(), "localca-plugin: ", `msg="certificate revoked"`, "reason=4") != 1 {
		t.Error("the plug-in's CA did not log the revocation (reason superseded)")
	}
	replaced := e.waitHosted(t, cert.GetCertificateId(), 30*time.Second)
	if replaced.GetCurrentIssuance().GetSerialNumber() == serial {
		t.Error("the revoked certificate was not replaced")
	}
	plug.verifyChain(t, replaced, "tls.example.com")
}

// localCAPlugin is cmd/certhosting-localca-plugin running beside the pair, as its StartProcess
// "localca-plugin".
type localCAPlugin struct {
	p        *pair.Pair
	args     []string // every flag but -listen
	addr     string
	rootFile string
}

// startWithPlugin starts the local CA plug-in (its own token, master key and database in the
// pair's directory, verifying records at resolver) and the pair, the lifecycle routing every
// product to the plug-in, its ticker quick and its CA retries short. withTLS, if not nil, adds to
// the plug-in's authority in -ca-config and returns flags for the plug-in.
func startWithPlugin(t *testing.T, resolver string,
	withTLS func(t *testing.T, dir string, a *caconfig.Authority) []string) (*env, *localCAPlugin) {
	t.Helper()
	dir := t.TempDir()
	caConfig := filepath.Join(dir, "cas.json")
	opts := pair.Options{Dir: dir, LifecycleArgs: []string{
		"-ca-config", caConfig, "-ticker-interval", "1s", "-ca-retry-base", "200ms", "-ca-retry-max", "1s",
	}}
	plug := &localCAPlugin{rootFile: filepath.Join(dir, "localca-plugin-root.pem")}
	e := startAfter(t, opts, func(p *pair.Pair) {
		plug.p = p
		tokenFile, keyFile := filepath.Join(dir, "localca-plugin-token"), filepath.Join(dir, "localca-plugin-master.key")
		writeFile(t, tokenFile, randomToken(t)+"\n")
		writeFile(t, keyFile, secrets.Generate())
		plug.args = []string{"-token-file", tokenFile, "-master-key-file", keyFile, "-db", filepath.Join(dir, "localca-plugin.db"),
			"-resolver", resolver, "-recheck", "1s", "-root-file", plug.rootFile}
		a := caconfig.Authority{Type: caconfig.TypePlugin, TokenFile: tokenFile, Timeout: "2s"}
		if withTLS != nil {
			plug.args = append(plug.args, withTLS(t, dir, &a)...)
		}
		plug.start(t, "127.0.0.1:0")
		a.Address = plug.addr
		cfg, err := json.MarshalIndent(caconfig.File{
			Authorities: map[string]caconfig.Authority{"localca-plugin": a},
			Products:    map[string]string{"*": "localca-plugin"},
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, caConfig, string(cfg))
	})
	return e, plug
}

// start starts the plug-in listening on addr.
func (l *localCAPlugin) start(t *testing.T, addr string) {
	t.Helper()
	got, err := l.p.StartProcess(t.Context(), "localca-plugin", bins.LocalCAPlugin, append(l.args, "-listen", addr)...)
	if err != nil {
		t.Fatal(err)
	}
	l.addr = got
}

// kill SIGKILLs the plug-in.
func (l *localCAPlugin) kill(t *testing.T) {
	t.Helper()
	l.p.KillProcess("localca-plugin")
}

// restart starts the plug-in again on its address, with its database, keys and token.
func (l *localCAPlugin) restart(t *testing.T) {
	t.Helper()
	l.start(t, l.addr)
}

// verifyChain checks that an instance's current certificate verifies for name against the root
// the plug-in wrote to -root-file.
func (l *localCAPlugin) verifyChain(t *testing.T, c *lifecyclev1.Certificate, name string) {
	t.Helper()
	rootPEM, err := os.ReadFile(l.rootFile)
	if err != nil {
		t.Fatalf("the plug-in's -root-file: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("the plug-in's -root-file holds no certificate:\n%s", rootPEM)
	}
	leaf, intermediates := tlstest.ParseChain(t, []byte(c.GetCurrentIssuance().GetCertificateChainPem()))
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: intermediates}); err != nil {
		t.Errorf("the hosted certificate does not verify for %s against the plug-in CA's root: %v", name, err)
	}
}

// applyHosted buys a 2-year hosted DV subscription through the order service and submits the
// first instance's application for domain; it returns the instance and the records to publish.
func (e *env) applyHosted(t *testing.T, requestID, domain string) (*lifecyclev1.Certificate, []*lifecyclev1.DnsRecord) {
	t.Helper()
	o := e.buy(t, requestID, 2, true)
	resp, err := e.lifecycle.SubmitApplication(t.Context(), &lifecyclev1.SubmitApplicationRequest{
		CertificateId: o.GetCertificateIds()[0], Domains: []string{domain},
		Contact: &lifecyclev1.Contact{Name: "Ops", Email: "ops@example.com"},
	})
	if err != nil {
		t.Fatalf("SubmitApplication: %v", err)
	}
	recs := resp.GetInstructions()
	if len(recs) != 1 || recs[0].GetName() != "_certhosting-validation."+domain || recs[0].GetType() != "TXT" {
		t.Fatalf("SubmitApplication asks for %v; want the local CA's TXT record for %s", recs, domain)
	}
	if st := resp.GetCertificate().GetState(); st != lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING {
		t.Fatalf("after SubmitApplication the instance is %v, want VALIDATING", st)
	}
	return resp.GetCertificate(), recs
}

// certificate reads an instance.
func (e *env) certificate(t *testing.T, id string) *lifecyclev1.Certificate {
	t.Helper()
	resp, err := e.lifecycle.GetCertificate(t.Context(), &lifecyclev1.GetCertificateRequest{CertificateId: id})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return resp.GetCertificate()
}

// waitHosted waits until the instance is HOSTED and returns it.
func (e *env) waitHosted(t *testing.T, id string, timeout time.Duration) *lifecyclev1.Certificate {
	t.Helper()
	var c *lifecyclev1.Certificate
	waitFor(t, timeout, func() error {
		if c = e.certificate(t, id); c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED {
			return fmt.Errorf("instance %s is %v (application %v), want HOSTED", id, c.GetState(), c.GetCurrentApplication().GetStatus())
		}
		return nil
	})
	return c
}

// wantInFlight checks that the instance's application is still in flight: the instance
// VALIDATING, its application PENDING, and no verdict anywhere.
func (e *env) wantInFlight(t *testing.T, id string) {
	t.Helper()
	c := e.certificate(t, id)
	if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING ||
		c.GetCurrentApplication().GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_PENDING {
		t.Errorf("with the plug-in down the instance is %v and its application %v; want VALIDATING and PENDING",
			c.GetState(), c.GetCurrentApplication().GetStatus())
	}
	e.wantNoVerdict(t, id)
}

// wantNoVerdict checks that the instance's history holds no failed validation and that no
// support case was opened.
func (e *env) wantNoVerdict(t *testing.T, id string) {
	t.Helper()
	hist, err := e.lifecycle.GetCertificateLifecycle(t.Context(), &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: id, PageSize: 100})
	if err != nil {
		t.Fatalf("GetCertificateLifecycle: %v", err)
	}
	for _, ev := range hist.GetEvents() {
		if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_VALIDATION_FAILED || ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_OPENED {
			t.Errorf("history has %v: %q; a plug-in outage must not be a verdict", ev.GetType(), ev.GetReason())
		}
	}
	cases, err := lifecyclev1.NewSupportServiceClient(dial(t, e.LifecycleAddr, e.DemoKey)).
		ListSupportCases(t.Context(), &lifecyclev1.ListSupportCasesRequest{PageSize: 100})
	if err != nil {
		t.Fatalf("ListSupportCases: %v", err)
	}
	if n := len(cases.GetCases()); n != 0 {
		t.Errorf("%d support cases are open, want none: %v", n, cases.GetCases())
	}
}

// customerZone is the customer's DNS, where the plug-in's CA looks their records up.
type customerZone struct{ *dnsserver.MemorySource }

// testZone serves a customerZone on loopback and returns it and its address.
func testZone(t *testing.T) (customerZone, string) {
	t.Helper()
	zone := dnsserver.NewMemorySource()
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return customerZone{zone}, srv.Addr()
}

// publish serves the records, as the customer would publish them in their zone.
func (z customerZone) publish(t *testing.T, records []*lifecyclev1.DnsRecord) {
	t.Helper()
	for _, r := range records {
		rr, err := dns.NewRR(fmt.Sprintf("%s. 60 IN %s %q", r.GetName(), r.GetType(), r.GetValue()))
		if err != nil {
			t.Fatal(err)
		}
		z.Add(rr)
	}
}

// countLines counts the lines of logs that start with prefix and contain every one of words.
func countLines(logs, prefix string, words ...string) int {
	n := 0
	for line := range strings.Lines(logs) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			n++
		}
	}
	return n
}

// randomToken is a plug-in token: 32 hexadecimal characters.
func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
