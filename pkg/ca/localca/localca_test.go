package localca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/jonboulle/clockwork"
	_ "github.com/mattn/go-sqlite3"
	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// start is the fake clock's first reading: not on a whole second, so truncation shows.
var start = time.Date(2026, 12, 1, 9, 30, 15, 700_000_000, time.UTC)

const day = 24 * time.Hour

// env is one CA on its own database and DNS server, with a fake clock.
type env struct {
	t      *testing.T
	clk    *clockwork.FakeClock
	zone   *dnsserver.MemorySource
	cfg    localca.Config
	ca     *localca.CA
	dbPath string
}

func newEnv(t *testing.T, configure ...func(*localca.Config)) *env {
	t.Helper()
	zone := dnsserver.NewMemorySource()
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clk: clockwork.NewFakeClockAt(start), zone: zone, dbPath: filepath.Join(t.TempDir(), "localca.db")}
	e.cfg = localca.Config{
		DBPath: e.dbPath, Box: box, Clock: e.clk, Resolver: srv.Addr(),
		DNSTimeout: time.Hour, DNSQueryTimeout: 200 * time.Millisecond,
	}
	for _, f := range configure {
		f(&e.cfg)
	}
	e.open()
	return e
}

// open opens the CA on e.cfg (again, after close, to test a restart).
func (e *env) open() {
	e.t.Helper()
	c, err := localca.Open(e.t.Context(), e.cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.ca = c
	e.t.Cleanup(func() { c.Close() })
}

func (e *env) publish(recs ...ca.DNSRecord) {
	for _, r := range recs {
		name := dns.Fqdn(r.Name)
		e.zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{r.Value}})
	}
}

func (e *env) withhold(recs ...ca.DNSRecord) {
	for _, r := range recs {
		e.zone.Remove(dns.Fqdn(r.Name), dns.TypeTXT)
	}
}

func (e *env) submit(req ca.Request) ca.Submission {
	e.t.Helper()
	sub, err := e.ca.Submit(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("Submit(%s): %v", req.ID, err)
	}
	return sub
}

func (e *env) status(ref string) ca.Status {
	e.t.Helper()
	st, err := e.ca.Status(e.t.Context(), ref)
	if err != nil {
		e.t.Fatalf("Status(%s): %v", ref, err)
	}
	return st
}

// verify checks chainPEM (leaf, intermediate) against the CA's root at the fake time, for every
// name, and returns the leaf.
func (e *env) verify(chainPEM []byte, names ...string) *x509.Certificate {
	e.t.Helper()
	certs := tlstest.Certs(e.t, chainPEM)
	if len(certs) != 2 {
		e.t.Fatalf("chain has %d certificates, want leaf and intermediate", len(certs))
	}
	if !bytes.Equal(pemOf(certs[1]), e.ca.IntermediatePEM()) {
		e.t.Error("chain's second certificate is not the CA's intermediate")
	}
	inter := x509.NewCertPool()
	inter.AddCert(certs[1])
	for _, n := range names {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: e.ca.Roots(), Intermediates: inter,
			CurrentTime: e.clk.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			e.t.Errorf("chain does not verify for %s at %s: %v", n, e.clk.Now(), err)
		}
	}
	return certs[0]
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

var (
	p256Key = sync.OnceValue(func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k })
	rsaKey  = sync.OnceValue(func() crypto.Signer { k, _ := rsa.GenerateKey(rand.Reader, 2048); return k })
)

// csr makes a CSR for key with cn as common name and names as DNS names.
func csr(t *testing.T, key crypto.Signer, cn string, names ...string) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: names}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// dvRequest is a DV request for domains with a P-256 key, the first domain as common name.
func dvRequest(t *testing.T, id string, domains ...string) ca.Request {
	return ca.Request{ID: id, Domains: domains, CSR: csr(t, p256Key(), domains[0], domains...), Validation: "DV",
		Binding: "bdl_" + id, Contact: ca.Contact{Email: "ops@example.com"}}
}

var acme = &ca.Organization{LegalName: "Example Shop GmbH", Country: "DE", StateOrProvince: "Berlin",
	Locality: "Berlin", RegistrationNumber: "HRB 12345"}

// TestIssue: with the records published, the first poll issues a certificate that verifies
// against the root at the fake time, with the requested names, subject, usages and lifetime.
func TestIssue(t *testing.T) {
	e := newEnv(t, func(c *localca.Config) { c.MaxValidity = 200 * day })
	nb := start.Truncate(time.Second)
	tests := []struct {
		name         string
		req          ca.Request
		records      int
		wantNotAfter time.Time
		wantOrg      bool
		wantRSA      bool
	}{
		{"DV single, capped at MaxValidity", dvRequest(t, "dv-single", "shop.example.com"), 1, nb.Add(200 * day), false, false},
		{"DV wildcard and its base share one record", dvRequest(t, "dv-wild", "example.net", "*.example.net"), 1, nb.Add(200 * day), false, false},
		{"DV multi-domain", dvRequest(t, "dv-multi", "a.example.com", "b.example.org", "*.c.example.com"), 3, nb.Add(200 * day), false, false},
		{"requested end inside MaxValidity wins", func() ca.Request {
			r := dvRequest(t, "dv-end", "end.example.com")
			r.NotAfter = start.Add(90 * day)
			return r
		}(), 1, nb.Add(90 * day), false, false},
		{"requested end beyond MaxValidity is capped", func() ca.Request {
			r := dvRequest(t, "dv-long", "long.example.com")
			r.NotAfter = start.Add(365 * day)
			return r
		}(), 1, nb.Add(200 * day), false, false},
		{"OV puts the organization in the subject", ca.Request{ID: "ov", Domains: []string{"ov.example.com"},
			CSR: csr(t, p256Key(), "", "ov.example.com"), Validation: "OV", Organization: acme, Binding: "b-ov"}, 1, nb.Add(200 * day), true, false},
		{"EV adds the registration number", ca.Request{ID: "ev", Domains: []string{"ev.example.com", "www.ev.example.com"},
			CSR: csr(t, p256Key(), "ev.example.com", "www.ev.example.com"), Validation: "EV", Organization: acme, Binding: "b-ev"}, 2, nb.Add(200 * day), true, false},
		{"RSA key gets keyEncipherment", ca.Request{ID: "rsa", Domains: []string{"rsa.example.com"},
			CSR: csr(t, rsaKey(), "rsa.example.com"), Validation: "DV", Binding: "b-rsa"}, 1, nb.Add(200 * day), false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := e.submit(tc.req)
			if len(sub.Instructions) != tc.records {
				t.Fatalf("%d instructions, want %d: %+v", len(sub.Instructions), tc.records, sub.Instructions)
			}
			e.publish(sub.Instructions...)
			st := e.status(sub.Ref)
			if st.State != ca.Issued {
				t.Fatalf("status = %+v, want issued", st)
			}
			leaf := e.verify(st.ChainPEM, tc.req.Domains...)
			if got, want := leaf.Subject.CommonName, tc.req.Domains[0]; got != want {
				t.Errorf("CN = %q, want %q", got, want)
			}
			if got, want := strings.Join(leaf.DNSNames, ","), strings.Join(tc.req.Domains, ","); got != want {
				t.Errorf("SANs = %s, want %s", got, want)
			}
			if !leaf.NotBefore.Equal(nb) || !leaf.NotAfter.Equal(tc.wantNotAfter) {
				t.Errorf("validity [%s, %s], want [%s, %s]", leaf.NotBefore, leaf.NotAfter, nb, tc.wantNotAfter)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Error("leaf is not marked CA=false")
			}
			wantUsage := x509.KeyUsageDigitalSignature
			if tc.wantRSA {
				wantUsage |= x509.KeyUsageKeyEncipherment
			}
			if leaf.KeyUsage != wantUsage || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("usage %v / %v, want %v / serverAuth", leaf.KeyUsage, leaf.ExtKeyUsage, wantUsage)
			}
			if tc.wantOrg {
				s := leaf.Subject
				if fmt.Sprint(s.Organization, s.Country, s.Locality, s.Province) != "[Example Shop GmbH] [DE] [Berlin] [Berlin]" {
					t.Errorf("subject %v lacks the organization", s)
				}
			} else if len(leaf.Subject.Organization) != 0 {
				t.Errorf("DV subject %v holds an organization", leaf.Subject)
			}
			if tc.req.Validation == "EV" && leaf.Subject.SerialNumber != acme.RegistrationNumber {
				t.Errorf("EV subject serialNumber %q, want %q", leaf.Subject.SerialNumber, acme.RegistrationNumber)
			}
			wantPolicy := map[string]string{"DV": "2.23.140.1.2.1", "OV": "2.23.140.1.2.2", "EV": "2.23.140.1.1"}[tc.req.Validation]
			if len(leaf.Policies) != 1 || leaf.Policies[0].String() != wantPolicy {
				t.Errorf("policies %v, want [%s]", leaf.Policies, wantPolicy)
			}
			if leaf.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %x is short", leaf.SerialNumber)
			}
			// Issued is final: polling again gives the same chain, with no DNS involved.
			e.withhold(sub.Instructions...)
			if again := e.status(sub.Ref); again.State != ca.Issued || !bytes.Equal(again.ChainPEM, st.ChainPEM) {
				t.Errorf("second poll = %v, want the same chain", again.State)
			}
		})
	}

	// Every issued serial is recorded, with its application.
	rows, err := sqlx.Open("sqlite3", "file:"+e.dbPath+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	if err := rows.Get(&n, `SELECT COUNT(DISTINCT c.serial) FROM certificates c JOIN applications a ON a.serial = c.serial`); err != nil {
		t.Fatal(err)
	}
	if n != len(tests) {
		t.Errorf("%d serials recorded, want %d", n, len(tests))
	}
}

// TestWithheldRecord: without the record the application stays pending, polled at the suggested
// interval, until the DNS timeout passes; then it is rejected naming the record.
func TestWithheldRecord(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "withheld", "shop.example.com"))
	rec := sub.Instructions[0]

	st := e.status(sub.Ref)
	if st.State != ca.Pending || st.RetryAfter != localca.DefaultRecheck {
		t.Fatalf("first poll = %+v, want pending with a retry after %s", st, localca.DefaultRecheck)
	}
	e.clk.Advance(time.Hour - 4*time.Second)
	if st := e.status(sub.Ref); st.State != ca.Pending || st.RetryAfter != 4*time.Second {
		t.Fatalf("4 s before the timeout = %+v, want pending, retry after 4 s (the time left)", st)
	}
	e.clk.Advance(4 * time.Second)
	st = e.status(sub.Ref)
	if st.State != ca.Rejected || st.Reason != ca.ReasonDNS {
		t.Fatalf("after the timeout = %+v, want rejected DNS", st)
	}
	for _, want := range []string{rec.Name, "TXT", rec.Value, "NXDOMAIN"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message %q does not name %q", st.Message, want)
		}
	}
	// The verdict is final: publishing now changes nothing.
	e.publish(rec)
	if again := e.status(sub.Ref); !reflect.DeepEqual(again, st) {
		t.Errorf("after publishing late = %+v, want the same rejection", again)
	}
}

// TestRecordPublishedLater: a record published before the timeout is found by the next poll.
func TestRecordPublishedLater(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "later", "shop.example.com"))
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("before publishing = %+v, want pending", st)
	}
	// A wrong value is no better than none.
	e.publish(ca.DNSRecord{Name: sub.Instructions[0].Name, Type: "TXT", Value: "something else"})
	e.clk.Advance(30 * time.Minute)
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("with a wrong value = %+v, want pending", st)
	}
	e.clk.Advance(29 * time.Minute)
	e.publish(sub.Instructions...)
	st := e.status(sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("after publishing = %+v, want issued", st)
	}
	if leaf := e.verify(st.ChainPEM, "shop.example.com"); !leaf.NotBefore.Equal(e.clk.Now().Truncate(time.Second)) {
		t.Errorf("not_before %s, want the time of issuance %s", leaf.NotBefore, e.clk.Now())
	}
}

// TestRecordsSeenStaySeen: the records of a multi-domain application may show up at different
// moments; each one seen counts for the application.
func TestRecordsSeenStaySeen(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "partial", "a.example.com", "b.example.org"))
	a, b := sub.Instructions[0], sub.Instructions[1]
	e.publish(a)
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("with one record of two = %+v, want pending", st)
	}
	e.withhold(a)
	e.publish(b)
	if st := e.status(sub.Ref); st.State != ca.Issued {
		t.Fatalf("with each record seen once = %+v, want issued", st)
	}

	// After the timeout, only the record never seen is named.
	sub = e.submit(dvRequest(t, "partial-2", "c.example.com", "d.example.org"))
	e.publish(sub.Instructions[0])
	e.status(sub.Ref)
	e.clk.Advance(time.Hour)
	st := e.status(sub.Ref)
	if st.State != ca.Rejected || strings.Contains(st.Message, sub.Instructions[0].Name) || !strings.Contains(st.Message, sub.Instructions[1].Name) {
		t.Errorf("after the timeout = %+v, want rejected naming only %s", st, sub.Instructions[1].Name)
	}
}

// TestOrganizationRejected: domain control proven, the organization check fails: ORGANIZATION.
func TestOrganizationRejected(t *testing.T) {
	e := newEnv(t, func(c *localca.Config) {
		c.OrganizationRule = localca.OrganizationRule{RejectLegalName: regexp.MustCompile(`(?i)\bfraud\b`)}
	})
	org := func(f func(o *ca.Organization)) *ca.Organization { o := *acme; f(&o); return &o }
	tests := []struct {
		name       string
		validation string
		org        *ca.Organization
		want       string
	}{
		{"legal name on the reject list", "OV", org(func(o *ca.Organization) { o.LegalName = "Fraud Holdings Ltd" }), `"Fraud Holdings Ltd" could not be verified`},
		{"country not two upper-case letters", "EV", org(func(o *ca.Organization) { o.Country = "Germany" }), `country "Germany"`},
		{"registration number missing", "OV", org(func(o *ca.Organization) { o.RegistrationNumber = "" }), "registration number is empty"},
		{"no organization at all", "EV", nil, "organization details are missing"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := fmt.Sprintf("org%d.example.com", i)
			sub := e.submit(ca.Request{ID: "org-" + d, Domains: []string{d}, CSR: csr(t, p256Key(), d), Validation: tc.validation,
				Organization: tc.org, Binding: "b-" + d})
			if st := e.status(sub.Ref); st.State != ca.Pending {
				t.Fatalf("before the DNS record = %+v, want pending (the organization is checked after the domains)", st)
			}
			e.publish(sub.Instructions...)
			st := e.status(sub.Ref)
			if st.State != ca.Rejected || st.Reason != ca.ReasonOrganization || !strings.Contains(st.Message, tc.want) ||
				!strings.HasPrefix(st.Message, tc.validation+" validation") {
				t.Errorf("status = %+v, want rejected ORGANIZATION, message with %q", st, tc.want)
			}
		})
	}
}

// TestPolicyRejected: a request the CA's policy refuses is recorded and rejected with POLICY,
// with nothing to publish; Submit itself succeeds (an error would mean "try again").
func TestPolicyRejected(t *testing.T) {
	e := newEnv(t)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := func(id string) ca.Request { return dvRequest(t, id, "shop.example.com") }
	with := func(id string, f func(r *ca.Request)) ca.Request { r := good(id); f(&r); return r }
	tests := []struct {
		name string
		req  ca.Request
		want string
	}{
		{"CSR lacks a requested name", with("missing", func(r *ca.Request) {
			r.Domains = []string{"shop.example.com", "www.example.com"}
		}), "missing www.example.com"},
		{"CSR has a name not requested", with("extra", func(r *ca.Request) {
			r.CSR = csr(t, p256Key(), "shop.example.com", "shop.example.com", "evil.example.com")
		}), "not requested evil.example.com"},
		{"CSR common name not requested", with("cn", func(r *ca.Request) {
			r.CSR = csr(t, p256Key(), "other.example.com", "shop.example.com")
		}), "not requested other.example.com"},
		{"weak ECDSA curve", with("p224", func(r *ca.Request) { r.CSR = csr(t, p224, "shop.example.com") }), "P-224"},
		{"short RSA key", with("rsa1024", func(r *ca.Request) { r.CSR = csr(t, rsa1024, "shop.example.com") }), "RSA key of 1024 bits"},
		{"CSR garbage", with("garbage", func(r *ca.Request) { r.CSR = []byte("not a csr") }), "CSR does not parse"},
		{"CSR signature broken", with("badsig", func(r *ca.Request) {
			c := bytes.Clone(r.CSR)
			c[len(c)-3] ^= 0xff // inside the signature
			r.CSR = c
		}), "signature"},
		{"EV wildcard", with("evwild", func(r *ca.Request) {
			r.Validation, r.Organization, r.Domains = "EV", acme, []string{"*.example.com"}
			r.CSR = csr(t, p256Key(), "*.example.com")
		}), "wildcard"},
		{"malformed domain", with("bad-domain", func(r *ca.Request) { r.Domains = []string{"shop..example.com"} }), "empty label"},
		{"domain twice", with("twice", func(r *ca.Request) { r.Domains = []string{"shop.example.com", "SHOP.example.com"} }), "twice"},
		{"end in the past", with("past", func(r *ca.Request) { r.NotAfter = start.Add(-time.Minute) }), "not in the future"},
		{"unknown validation type", with("xv", func(r *ca.Request) { r.Validation = "XV" }), `"XV"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub := e.submit(tc.req)
			if len(sub.Instructions) != 0 {
				t.Errorf("instructions %+v for a rejected request", sub.Instructions)
			}
			st := e.status(sub.Ref)
			if st.State != ca.Rejected || st.Reason != ca.ReasonPolicy || !strings.Contains(st.Message, tc.want) {
				t.Errorf("status = %+v, want rejected POLICY, message with %q", st, tc.want)
			}
		})
	}
}

// TestSubmitIdempotent: the same ID is the same submission, whatever else the second carries.
func TestSubmitIdempotent(t *testing.T) {
	e := newEnv(t)
	first := e.submit(dvRequest(t, "app_1", "shop.example.com"))
	again := e.submit(dvRequest(t, "app_1", "shop.example.com"))
	other := e.submit(dvRequest(t, "app_1", "other.example.com"))
	if again.Ref != first.Ref || other.Ref != first.Ref || fmt.Sprint(again.Instructions) != fmt.Sprint(first.Instructions) ||
		fmt.Sprint(other.Instructions) != fmt.Sprint(first.Instructions) {
		t.Errorf("submissions %+v, %+v, %+v, want all equal", first, again, other)
	}
	if _, err := e.ca.Submit(t.Context(), ca.Request{Domains: []string{"shop.example.com"}}); err == nil {
		t.Error("Submit without an ID: no error")
	}
}

// TestBindingMakesRecordsPersistent: every application of a bundle (same Binding) asks for the same
// record, so a renewal needs no customer action; another bundle gets another value.
func TestBindingMakesRecordsPersistent(t *testing.T) {
	e := newEnv(t)
	req := func(id, binding string) ca.Request {
		r := dvRequest(t, id, "shop.example.com", "*.shop.example.com")
		r.Binding = binding
		return r
	}
	first := e.submit(req("app_first", "bdl_A"))
	e.publish(first.Instructions...)
	if st := e.status(first.Ref); st.State != ca.Issued {
		t.Fatalf("first application = %+v, want issued", st)
	}

	e.clk.Advance(170 * day)
	renewal := e.submit(req("app_renewal", "bdl_A"))
	if fmt.Sprint(renewal.Instructions) != fmt.Sprint(first.Instructions) {
		t.Errorf("renewal instructions %+v, want the first's %+v", renewal.Instructions, first.Instructions)
	}
	if st := e.status(renewal.Ref); st.State != ca.Issued {
		t.Errorf("renewal with the record still published = %+v, want issued at the first poll", st)
	}

	other := e.submit(req("app_other", "bdl_B"))
	if other.Instructions[0].Name != first.Instructions[0].Name || other.Instructions[0].Value == first.Instructions[0].Value {
		t.Errorf("another bundle's record %+v, want the same name and another value than %+v", other.Instructions[0], first.Instructions[0])
	}
	if st := e.status(other.Ref); st.State != ca.Pending {
		t.Errorf("another bundle, its record not published = %+v, want pending", st)
	}
}

// TestReopen: a restart keeps the root, the validation secret and pending applications.
func TestReopen(t *testing.T) {
	e := newEnv(t)
	root := e.ca.RootPEM()
	sub := e.submit(dvRequest(t, "app_pending", "shop.example.com"))
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("before restart = %+v, want pending", st)
	}
	if err := e.ca.Close(); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(10 * time.Minute)
	e.open()
	if !bytes.Equal(e.ca.RootPEM(), root) {
		t.Error("the root changed across a restart")
	}
	if again := e.submit(dvRequest(t, "app_pending", "shop.example.com")); fmt.Sprint(again) != fmt.Sprint(sub) {
		t.Errorf("resubmitted after restart: %+v, want %+v", again, sub)
	}
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("after restart = %+v, want still pending", st)
	}
	e.publish(sub.Instructions...)
	st := e.status(sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("after publishing = %+v, want issued", st)
	}
	e.verify(st.ChainPEM, "shop.example.com") // against the root, the same as before the restart

	// Another master key cannot open the CA's keys.
	wrong := e.cfg
	wrong.Box, _ = secrets.Parse(secrets.Generate())
	e.ca.Close()
	if c, err := localca.Open(t.Context(), wrong); err == nil {
		c.Close()
		t.Error("Open with another master key succeeded")
	}
}

// TestDNSUnavailable: a DNS server that cannot be reached, times out or fails is no verdict,
// however long it lasts: the application stays pending, polled with a growing backoff. Once the
// server answers again, a published record is found; a missing one is rejected only after the
// server has answered without it for the whole DNS timeout.
func TestDNSUnavailable(t *testing.T) {
	tests := []struct {
		name     string
		resolver func(t *testing.T) string
	}{
		{"nothing listening", closedPort},
		{"no answer", silentServer},
		{"SERVFAIL", func(t *testing.T) string {
			return serveFunc(t, func(w dns.ResponseWriter, r *dns.Msg) {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeServerFailure)
				w.WriteMsg(m)
			})
		}},
		{"REFUSED", func(t *testing.T) string {
			return serveFunc(t, func(w dns.ResponseWriter, r *dns.Msg) {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeRefused)
				w.WriteMsg(m)
			})
		}},
	}
	for _, tc := range tests {
		for _, published := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, record published %v", tc.name, published), func(t *testing.T) {
				e := newEnv(t)
				zone := e.cfg.Resolver
				e.ca.Close()
				e.cfg.Resolver, e.cfg.DNSQueryTimeout = tc.resolver(t), 50*time.Millisecond
				e.open()
				sub := e.submit(dvRequest(t, "app_dns_down", "shop.example.com"))
				if published {
					e.publish(sub.Instructions...)
				}
				// Three hours of outage, three times the DNS timeout.
				want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
					80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
				for i := range 12 {
					st := e.status(sub.Ref)
					if st.State != ca.Pending {
						t.Fatalf("%v into the outage: %+v, want pending", time.Duration(i)*15*time.Minute, st)
					}
					if w := want[min(i, len(want)-1)]; st.RetryAfter != w {
						t.Errorf("poll %d in the outage: retry after %v, want %v", i+1, st.RetryAfter, w)
					}
					e.clk.Advance(15 * time.Minute)
				}

				// The resolver answers again.
				e.ca.Close()
				e.cfg.Resolver = zone
				e.open()
				if published {
					if st := e.status(sub.Ref); st.State != ca.Issued {
						t.Fatalf("with the resolver back and the record there: %+v, want issued", st)
					}
					return
				}
				if st := e.status(sub.Ref); st.State != ca.Pending || st.RetryAfter != localca.DefaultRecheck {
					t.Fatalf("first answer without the record: %+v, want pending, polled again after the recheck", st)
				}
				e.clk.Advance(time.Hour - time.Second)
				if st := e.status(sub.Ref); st.State != ca.Pending {
					t.Fatalf("answered without the record for a second less than the timeout: %+v, want pending", st)
				}
				e.clk.Advance(time.Second)
				st := e.status(sub.Ref)
				if st.State != ca.Rejected || st.Reason != ca.ReasonDNS || !strings.Contains(st.Message, "NXDOMAIN") ||
					!strings.Contains(st.Message, sub.Instructions[0].Name) {
					t.Errorf("answered without the record for the timeout: %+v, want rejected DNS naming the record and NXDOMAIN", st)
				}
			})
		}
	}
}

// TestOutageInsideTheTimeout: the time a resolver fails inside the DNS timeout does not count:
// 40 minutes answered without the record, 2 hours of outage, then 20 more answered minutes make
// the hour.
func TestOutageInsideTheTimeout(t *testing.T) {
	var failing atomic.Bool
	e := newEnv(t)
	zoneAddr := e.cfg.Resolver
	proxy := serveFunc(t, func(w dns.ResponseWriter, r *dns.Msg) {
		if failing.Load() {
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			w.WriteMsg(m)
			return
		}
		in, err := dns.Exchange(r, zoneAddr)
		if err != nil {
			return
		}
		w.WriteMsg(in)
	})
	e.ca.Close()
	e.cfg.Resolver = proxy
	e.open()
	sub := e.submit(dvRequest(t, "app_gap", "shop.example.com"))
	poll := func(want ca.State, what string) {
		t.Helper()
		if st := e.status(sub.Ref); st.State != want {
			t.Fatalf("%s: %+v, want %v", what, st, want)
		}
	}
	for range 5 {
		poll(ca.Pending, "answered")
		e.clk.Advance(10 * time.Minute)
	}
	// 40 minutes answered so far (the first poll started the count); the outage begins.
	failing.Store(true)
	for range 12 {
		poll(ca.Pending, "outage")
		e.clk.Advance(10 * time.Minute)
	}
	failing.Store(false)
	poll(ca.Pending, "answered again: a new stretch starts")
	e.clk.Advance(20*time.Minute - time.Second)
	poll(ca.Pending, "59:59 answered in all")
	e.clk.Advance(time.Second)
	poll(ca.Rejected, "an hour answered in all")
}

// TestCNAMEFollowed: a customer may point the validation name at another zone with a CNAME; the
// CA follows it, within the answer or by asking for the target.
func TestCNAMEFollowed(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "app_cname", "shop.example.com"))
	rec := sub.Instructions[0]
	target := "shop.validation.dns-provider.example."
	e.zone.Add(&dns.CNAME{Hdr: dns.RR_Header{Name: dns.Fqdn(rec.Name), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: target})
	e.publish(ca.DNSRecord{Name: target, Type: "TXT", Value: rec.Value})
	if st := e.status(sub.Ref); st.State != ca.Issued {
		t.Errorf("CNAME answered with its target = %+v, want issued", st)
	}

	// A server that answers the CNAME alone: the CA asks again for the target.
	addr := serveFunc(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch strings.ToLower(q.Name) {
		case dns.Fqdn("_certhosting-validation.cname.example.com"):
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: target})
		case target:
			rrs, _ := e.zone.Lookup(target, dns.TypeTXT) // the records of the test zone
			m.Answer = append(m.Answer, rrs...)
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	e2 := newEnv(t, func(c *localca.Config) { c.Resolver = addr })
	sub2 := e2.submit(dvRequest(t, "app_cname2", "cname.example.com"))
	e.publish(ca.DNSRecord{Name: target, Type: "TXT", Value: sub2.Instructions[0].Value})
	if st := e2.status(sub2.Ref); st.State != ca.Issued {
		t.Errorf("CNAME answered alone = %+v, want issued", st)
	}
}

// TestCancel: a pending application is cancelled; decided and unknown ones are left alone.
func TestCancel(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	pending := e.submit(dvRequest(t, "app_cancel", "shop.example.com"))
	if err := e.ca.Cancel(ctx, pending.Ref); err != nil {
		t.Fatal(err)
	}
	want := ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: "cancelled"}
	e.publish(pending.Instructions...)
	if st := e.status(pending.Ref); !reflect.DeepEqual(st, want) {
		t.Errorf("cancelled = %+v, want %+v", st, want)
	}

	issued := e.submit(dvRequest(t, "app_issued", "issued.example.com"))
	e.publish(issued.Instructions...)
	st := e.status(issued.Ref)
	for _, ref := range []string{pending.Ref, issued.Ref, "lca_unknown"} {
		if err := e.ca.Cancel(ctx, ref); err != nil {
			t.Errorf("Cancel(%s) = %v, want nil", ref, err)
		}
	}
	if again := e.status(issued.Ref); again.State != ca.Issued || !bytes.Equal(again.ChainPEM, st.ChainPEM) {
		t.Errorf("issued application after Cancel = %v, want still issued", again.State)
	}
	if st := e.status("lca_unknown"); st.State != ca.Rejected || st.Reason != ca.ReasonPolicy {
		t.Errorf("unknown ref = %+v, want rejected POLICY", st)
	}
}

// TestConcurrentPolls: polls racing on one application issue one certificate, which they all get.
func TestConcurrentPolls(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "app_race", "shop.example.com"))
	e.publish(sub.Instructions...)
	chains := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range chains {
		wg.Go(func() {
			st, err := e.ca.Status(context.Background(), sub.Ref)
			if err != nil || st.State != ca.Issued {
				t.Errorf("poll %d = %+v, %v", i, st, err)
			}
			chains[i] = st.ChainPEM
		})
	}
	wg.Wait()
	for i := range chains {
		if !bytes.Equal(chains[i], chains[0]) {
			t.Errorf("poll %d got another chain than poll 0", i)
		}
	}
}

// TestNoPlaintextSecrets: the database files hold no private key and no secret in the clear,
// neither as PEM nor as raw bytes.
func TestNoPlaintextSecrets(t *testing.T) {
	e := newEnv(t)
	sub := e.submit(dvRequest(t, "app_keys", "shop.example.com"))
	e.publish(sub.Instructions...)
	if st := e.status(sub.Ref); st.State != ca.Issued {
		t.Fatalf("status = %+v, want issued", st)
	}
	secrets := e.ca.SecretsForTest()
	check := func(when string) {
		files, _ := filepath.Glob(e.dbPath + "*") // the database, and its -wal and -shm while open
		if len(files) == 0 {
			t.Fatalf("%s: no database files at %s", when, e.dbPath)
		}
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte("PRIVATE KEY")) {
				t.Errorf("%s: %s contains \"PRIVATE KEY\"", when, filepath.Base(f))
			}
			for i, s := range secrets {
				if bytes.Contains(raw, s) {
					t.Errorf("%s: %s contains secret %d in the clear", when, filepath.Base(f), i)
				}
			}
		}
	}
	check("while open")
	if err := e.ca.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")
}

// TestHierarchy: the CA's own root and intermediate, made at its first start from the clock.
func TestHierarchy(t *testing.T) {
	e := newEnv(t)
	parse := func(p []byte) *x509.Certificate {
		b, _ := pem.Decode(p)
		if b == nil {
			t.Fatalf("not PEM: %q", p)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root, inter := parse(e.ca.RootPEM()), parse(e.ca.IntermediatePEM())
	nb := start.Truncate(time.Second)
	if err := root.CheckSignatureFrom(root); err != nil || !root.IsCA {
		t.Errorf("root is not a self-signed CA: %v", err)
	}
	if err := inter.CheckSignatureFrom(root); err != nil || !inter.IsCA || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
		t.Errorf("intermediate is not a CA for leaves only signed by the root: %v", err)
	}
	for _, c := range []struct {
		cert  *x509.Certificate
		years int
		curve elliptic.Curve
	}{{root, 25, elliptic.P384()}, {inter, 10, elliptic.P256()}} {
		if !c.cert.NotBefore.Equal(nb) || !c.cert.NotAfter.Equal(nb.Add(time.Duration(c.years)*365*day)) {
			t.Errorf("%s valid [%s, %s], want %d years from %s", c.cert.Subject.CommonName, c.cert.NotBefore, c.cert.NotAfter, c.years, nb)
		}
		if k, ok := c.cert.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != c.curve {
			t.Errorf("%s key is not ECDSA %s", c.cert.Subject.CommonName, c.curve.Params().Name)
		}
	}
}

// closedPort is a UDP address nothing listens on: queries are refused at once.
func closedPort(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// silentServer is a UDP socket that reads queries and never answers.
func silentServer(t *testing.T) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// serveFunc runs a UDP DNS server answering with h.
func serveFunc(t *testing.T, h dns.HandlerFunc) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(started) }}
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// Replicas starting together on one new database: each opens the CA at the same moment, one
// creates the root and intermediate, and all of them issue under that one root.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		if d == db.SQLite {
			t.Skip("a SQLite file has one process: replicas share a PostgreSQL database")
		}
		box, err := secrets.Parse(secrets.Generate())
		if err != nil {
			t.Fatal(err)
		}
		cfg := localca.Config{DBPath: dbtest.URL(t, d, "localca"), Box: box, Clock: clockwork.NewFakeClockAt(start),
			Resolver: "127.0.0.1:1", DNSTimeout: time.Hour}
		const replicas = 4
		roots := make([]string, replicas)
		var wg sync.WaitGroup
		for i := range replicas {
			wg.Go(func() {
				c, err := localca.Open(t.Context(), cfg)
				if err != nil {
					t.Errorf("replica %d: Open: %v", i, err)
					return
				}
				defer c.Close()
				roots[i] = string(c.RootPEM()) + string(c.IntermediatePEM())
			})
		}
		wg.Wait()
		for i := 1; i < replicas; i++ {
			if roots[i] != roots[0] {
				t.Errorf("replica %d has another root or intermediate than replica 0", i)
			}
		}
	})
}

// crl fetches the CA's CRL and checks it is signed by the intermediate and current at the fake
// time.
func (e *env) crl() *x509.RevocationList {
	e.t.Helper()
	der, err := e.ca.CRL(e.t.Context())
	if err != nil {
		e.t.Fatalf("CRL: %v", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatalf("CRL does not parse: %v", err)
	}
	inter := tlstest.Certs(e.t, e.ca.IntermediatePEM())[0]
	if err := crl.CheckSignatureFrom(inter); err != nil {
		e.t.Errorf("CRL not signed by the intermediate: %v", err)
	}
	if now := e.clk.Now(); crl.ThisUpdate.After(now) || !crl.NextUpdate.After(now) {
		e.t.Errorf("CRL valid %v to %v, not at %v", crl.ThisUpdate, crl.NextUpdate, now)
	}
	return crl
}
