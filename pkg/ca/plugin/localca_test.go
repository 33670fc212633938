package plugin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// localEnv is the local CA (with a fake clock, verifying at a test DNS server) served as a
// plug-in by plugin.Server behind TokenAuth, and a plug-in client calling it: the lifecycle
// service's view of cmd/certhosting-localca-plugin, in-process.
type localEnv struct {
	t         *testing.T
	clk       *clockwork.FakeClock
	zone      *dnsserver.MemorySource
	authority *localca.CA
	client    *plugin.Client
}

func newLocalEnv(t *testing.T, rule localca.OrganizationRule) *localEnv {
	t.Helper()
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	clk := clockwork.NewFakeClockAt(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	authority, err := localca.Open(t.Context(), localca.Config{
		DBPath: filepath.Join(t.TempDir(), "localca.db"), Box: box, Clock: clk, Resolver: dnsSrv.Addr(),
		DNSTimeout: time.Hour, DNSQueryTimeout: 200 * time.Millisecond, OrganizationRule: rule,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { authority.Close() })
	addr := serve(t, plugin.NewServer(authority))
	return &localEnv{t: t, clk: clk, zone: zone, authority: authority, client: dial(t, plugin.ClientConfig{Address: addr})}
}

// publish serves the records from the test DNS server.
func (e *localEnv) publish(recs ...ca.DNSRecord) {
	for _, r := range recs {
		name := dns.Fqdn(r.Name)
		e.zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{r.Value}})
	}
}

func (e *localEnv) submit(req ca.Request) ca.Submission {
	e.t.Helper()
	sub, err := e.client.Submit(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("Submit(%s) through the plug-in: %v", req.ID, err)
	}
	return sub
}

func (e *localEnv) status(ref string) ca.Status {
	e.t.Helper()
	st, err := e.client.Status(e.t.Context(), ref)
	if err != nil {
		e.t.Fatalf("Status(%s) through the plug-in: %v", ref, err)
	}
	return st
}

// request is a request for domains with a fresh P-256 key, the first domain as common name.
func request(t *testing.T, id, validation string, domains ...string) ca.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: domains[0]}, DNSNames: domains}, key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Request{ID: id, Domains: domains, CSR: csr, Validation: validation, Binding: "bdl_" + id,
		Contact: ca.Contact{Name: "Ops", Email: "ops@example.com"}}
}

// TestIssuanceThroughPlugin: the whole application through the contract: Submit returns the
// local CA's instructions (the same again for the same id), Status says pending until the TXT
// record is published and then issued, with a chain that verifies against the CA's root.
func TestIssuanceThroughPlugin(t *testing.T) {
	t.Parallel()
	e := newLocalEnv(t, localca.OrganizationRule{})
	req := request(t, "app-issue", "DV", "shop.example.com", "www.example.com")
	sub := e.submit(req)
	if !strings.HasPrefix(sub.Ref, "lca_") || len(sub.Instructions) != len(req.Domains) {
		t.Fatalf("Submit = %+v, want a local CA ref and a record per domain", sub)
	}
	for i, rec := range sub.Instructions {
		if rec.Name != "_certhosting-validation."+req.Domains[i] || rec.Type != "TXT" || rec.Value == "" {
			t.Errorf("instruction %d = %+v, want a TXT record at _certhosting-validation.%s", i, rec, req.Domains[i])
		}
	}
	if again := e.submit(req); again.Ref != sub.Ref || !slices.Equal(again.Instructions, sub.Instructions) {
		t.Errorf("second Submit with the same id = %+v, want the first submission %+v", again, sub)
	}

	if st := e.status(sub.Ref); st.State != ca.Pending || st.RetryAfter <= 0 {
		t.Fatalf("before the record is published: %+v, want pending with a retry after", st)
	}
	e.publish(sub.Instructions...)
	st := e.status(sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("after the record is published: %+v, want issued", st)
	}
	leaf, inter := tlstest.ParseChain(t, st.ChainPEM)
	for _, name := range req.Domains {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: e.authority.Roots(), Intermediates: inter,
			CurrentTime: e.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("chain does not verify for %s against the local CA's root: %v", name, err)
		}
	}
	if again := e.status(sub.Ref); again.State != ca.Issued || string(again.ChainPEM) != string(st.ChainPEM) {
		t.Errorf("polling again = %v, want the same chain", again.State)
	}
}

// TestVerdictsThroughPlugin: the local CA's rejections reach the caller as verdicts (no error),
// with their reason and message.
func TestVerdictsThroughPlugin(t *testing.T) {
	t.Parallel()
	fraud := localca.OrganizationRule{RejectLegalName: regexp.MustCompile(`(?i)\bfraud\b`)}
	tests := []struct {
		name       string
		rule       localca.OrganizationRule
		run        func(e *localEnv) ca.Status
		wantReason ca.Reason
		wantMsg    []string
	}{
		{"DNS: the record is never published", localca.OrganizationRule{}, func(e *localEnv) ca.Status {
			sub := e.submit(request(e.t, "app-dns", "DV", "shop.example.com"))
			if st := e.status(sub.Ref); st.State != ca.Pending {
				e.t.Fatalf("at once: %+v, want pending", st)
			}
			e.clk.Advance(time.Hour)
			return e.status(sub.Ref)
		}, ca.ReasonDNS, []string{"_certhosting-validation.shop.example.com", "the DNS answered for 1h0m0s without the record"}},
		{"ORGANIZATION: the legal name is on the CA's reject list", fraud, func(e *localEnv) ca.Status {
			req := request(e.t, "app-org", "OV", "shop.example.com")
			req.Organization = &ca.Organization{LegalName: "Fraud Holdings Ltd", Country: "DE", Locality: "Berlin", RegistrationNumber: "HRB 1"}
			sub := e.submit(req)
			e.publish(sub.Instructions...)
			return e.status(sub.Ref)
		}, ca.ReasonOrganization, []string{"OV validation", `"Fraud Holdings Ltd" could not be verified`}},
		{"POLICY: the CSR names another domain", localca.OrganizationRule{}, func(e *localEnv) ca.Status {
			req := request(e.t, "app-policy", "DV", "shop.example.com")
			req.Domains = []string{"other.example.com"}
			return e.status(e.submit(req).Ref)
		}, ca.ReasonPolicy, []string{"other.example.com"}},
		{"POLICY: cancelled through the plug-in", localca.OrganizationRule{}, func(e *localEnv) ca.Status {
			sub := e.submit(request(e.t, "app-cancel", "DV", "shop.example.com"))
			if err := e.client.Cancel(e.t.Context(), sub.Ref); err != nil {
				e.t.Fatalf("Cancel: %v", err)
			}
			return e.status(sub.Ref)
		}, ca.ReasonPolicy, []string{"cancelled"}},
		{"POLICY: an unknown reference", localca.OrganizationRule{}, func(e *localEnv) ca.Status {
			return e.status("lca_01JUNKNOWN000000000000000")
		}, ca.ReasonPolicy, []string{"unknown application"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := tc.run(newLocalEnv(t, tc.rule))
			if st.State != ca.Rejected || st.Reason != tc.wantReason {
				t.Fatalf("status = %+v, want rejected with reason %s", st, tc.wantReason)
			}
			for _, w := range tc.wantMsg {
				if !strings.Contains(st.Message, w) {
					t.Errorf("message %q does not say %q", st.Message, w)
				}
			}
		})
	}
}

// TestRevokeThroughPlugin: a revocation through the contract reaches the local CA (its CRL lists
// the certificate with the reason); revoking again succeeds; a certificate the CA did not issue is
// the final refusal, not a transient error.
func TestRevokeThroughPlugin(t *testing.T) {
	t.Parallel()
	e := newLocalEnv(t, localca.OrganizationRule{})
	sub := e.submit(request(t, "app-revoke", "DV", "revoke.example.com"))
	e.publish(sub.Instructions...)
	st := e.status(sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("status %+v, want issued", st)
	}
	for range 2 {
		if err := e.client.Revoke(t.Context(), st.ChainPEM, ca.RevokeSuperseded); err != nil {
			t.Fatalf("Revoke through the plug-in: %v", err)
		}
	}
	der, err := e.authority.CRL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := tlstest.ParseChain(t, st.ChainPEM)
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != int(ca.RevokeSuperseded) {
		t.Errorf("CRL entries %+v, want the certificate, superseded", crl.RevokedCertificateEntries)
	}
	other := newLocalEnv(t, localca.OrganizationRule{})
	osub := other.submit(request(t, "app-other", "DV", "other.example.com"))
	other.publish(osub.Instructions...)
	foreign := other.status(osub.Ref).ChainPEM
	if err := e.client.Revoke(t.Context(), foreign, ca.RevokeKeyCompromise); !errors.Is(err, ca.ErrNotRevocable) {
		t.Errorf("revoking another CA's certificate through the plug-in: %v, want ErrNotRevocable", err)
	}
}
