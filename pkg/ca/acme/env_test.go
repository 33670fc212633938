package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/internal/pebbletest"
	"github.com/certhosting/certhosting/internal/tlstest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// zone is the delegation zone of every test.
const zone = "acme.certhosting.test"

// awaitTimeout bounds one application's wait for a verdict: Pebble's validation sleeps up to
// 5 s per attempt, and the poll interval adds a little.
const awaitTimeout = 60 * time.Second

// env is one Pebble, the delegated zone's DNS server, and an ACME client on its own database.
type env struct {
	t      *testing.T
	pebble *pebbletest.Pebble
	zone   *zoneChallenges
	cfg    acme.Config
	client *acme.Client
}

// newEnv starts Pebble (with opts; the delegation zone is added) and opens a client on the
// default config changed by configure.
func newEnv(t *testing.T, opts pebbletest.Options, configure ...func(*acme.Config, *pebbletest.Pebble)) *env {
	t.Helper()
	z := newZoneChallenges()
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: z.src})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if opts.Delegations == nil {
		opts.Delegations = map[string]string{}
	}
	opts.Delegations[zone] = srv.Addr()
	p := pebbletest.Start(t, opts)
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, pebble: p, zone: z}
	e.cfg = acme.Config{
		DirectoryURL: p.DirectoryURL, Email: "ops@certhosting.test", RootCAs: p.TLSRootPEM, NoSystemRoots: true,
		Profile: "default", DBPath: filepath.Join(t.TempDir(), "acme.db"), Box: box, Challenges: z, Zone: zone,
		HTTPTimeout: 10 * time.Second, PollInterval: 500 * time.Millisecond, Logger: grpctest.Logger(t),
	}
	for _, f := range configure {
		f(&e.cfg, p)
	}
	e.client = e.open(e.cfg)
	return e
}

// open opens a client on cfg, closed at cleanup.
func (e *env) open(cfg acme.Config) *acme.Client {
	e.t.Helper()
	c, err := acme.Open(e.t.Context(), cfg)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// delegate publishes the customer's CNAMEs for the domains of binding in the customer's zone, as
// the customer would once, and returns them.
func (e *env) delegate(binding string, domains ...string) []ca.DNSRecord {
	e.t.Helper()
	var recs []ca.DNSRecord
	for _, d := range domains {
		rec := acme.Delegation(zone, binding, d)
		if slices.Contains(recs, rec) {
			continue
		}
		if err := e.pebble.ChallSrv.SetCNAME(e.t.Context(), rec.Name, rec.Value); err != nil {
			e.t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

func (e *env) submit(c *acme.Client, req ca.Request) ca.Submission {
	e.t.Helper()
	sub, err := c.Submit(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("Submit(%s): %v", req.ID, err)
	}
	return sub
}

// await polls until the application is decided, honouring RetryAfter (capped at a second to keep
// the tests quick); a Status error fails the test.
func (e *env) await(c *acme.Client, ref string) ca.Status {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), awaitTimeout)
	defer cancel()
	for {
		st, err := c.Status(ctx, ref)
		if err != nil {
			e.t.Fatalf("Status(%s): %v", ref, err)
		}
		if st.State != ca.Pending {
			return st
		}
		if st.RetryAfter <= 0 {
			e.t.Fatalf("Status(%s) pending with RetryAfter %v; want a positive hint", ref, st.RetryAfter)
		}
		select {
		case <-ctx.Done():
			e.t.Fatalf("application %s still pending after %s", ref, awaitTimeout)
		case <-time.After(min(st.RetryAfter, time.Second)):
		}
	}
}

// issue delegates, submits and waits for the certificate, failing the test on anything else.
func (e *env) issue(c *acme.Client, req ca.Request) ([]byte, ca.Submission) {
	e.t.Helper()
	e.delegate(req.Binding, req.Domains...)
	sub := e.submit(c, req)
	st := e.await(c, sub.Ref)
	if st.State != ca.Issued {
		e.t.Fatalf("application %s: %v %s %q, want issued", req.ID, st.State, st.Reason, st.Message)
	}
	return st.ChainPEM, sub
}

// verify checks that chainPEM is leaf first, verifies against Pebble's issuing root for every
// name, and names exactly domains; it returns the leaf.
func (e *env) verify(chainPEM []byte, domains ...string) *x509.Certificate {
	e.t.Helper()
	certs := tlstest.Certs(e.t, chainPEM)
	if len(certs) < 2 {
		e.t.Fatalf("chain has %d certificates, want the leaf and its intermediate", len(certs))
	}
	if certs[0].IsCA {
		e.t.Fatal("chain's first certificate is a CA; want the leaf first")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, d := range domains {
		name := d
		if len(d) > 2 && d[:2] == "*." {
			name = "www" + d[1:]
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: name, Roots: e.pebble.Roots(), Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			e.t.Errorf("chain does not verify for %s against Pebble's root: %v", name, err)
		}
	}
	got, want := slices.Sorted(slices.Values(certs[0].DNSNames)), slices.Sorted(slices.Values(domains))
	if !slices.Equal(got, want) {
		e.t.Errorf("leaf names %q, want %q", got, want)
	}
	return certs[0]
}

// request is a DV request for domains with a fresh P-256 key.
func request(t *testing.T, id, binding string, domains ...string) ca.Request {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: domains[0]}, DNSNames: domains}, key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Request{ID: id, Domains: domains, CSR: der, Validation: "DV", Binding: binding,
		Contact: ca.Contact{Email: "customer@example.com"}}
}

// zoneChallenges is the service side of the delegation in tests: it publishes DNS-01 values as
// TXT records in the delegated zone's MemorySource, and counts what it was asked.
type zoneChallenges struct {
	src *dnsserver.MemorySource

	mu        sync.Mutex
	values    map[string][]string // fqdn → values
	publishes int
}

func newZoneChallenges() *zoneChallenges {
	return &zoneChallenges{src: dnsserver.NewMemorySource(), values: map[string][]string{}}
}

func (z *zoneChallenges) Publish(_ context.Context, fqdn, value string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.publishes++
	if !slices.Contains(z.values[fqdn], value) {
		z.values[fqdn] = append(z.values[fqdn], value)
	}
	z.sync(fqdn)
	return nil
}

func (z *zoneChallenges) Remove(_ context.Context, fqdn, value string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.values[fqdn] = slices.DeleteFunc(z.values[fqdn], func(v string) bool { return v == value })
	z.sync(fqdn)
	return nil
}

// sync sets the TXT records of fqdn to its values.
func (z *zoneChallenges) sync(fqdn string) {
	name := dns.Fqdn(fqdn)
	var rrs []dns.RR
	for _, v := range z.values[fqdn] {
		rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
	}
	z.src.Set(name, dns.TypeTXT, rrs...)
}

// published is how many values are published at the targets of recs, and how many Publish calls
// there were in all.
func (z *zoneChallenges) published(recs []ca.DNSRecord) (values, calls int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range recs {
		values += len(z.values[r.Value])
	}
	return values, z.publishes
}
