package lifecycle_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// outsideCA is a CA of the test's own: what issued the certificates customers import.
type outsideCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  string
}

func newOutsideCA(t *testing.T) *outsideCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Outside Test CA"},
		NotBefore: start.Add(-365 * day), NotAfter: start.Add(10 * 365 * day), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &outsideCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue makes a certificate for names valid [notBefore, notAfter) with key, and returns its chain
// (leaf, then the CA) and the key, both PEM.
func (o *outsideCA) issue(t *testing.T, key crypto.Signer, notBefore, notAfter time.Time, names ...string) (chain, keyPEM string) {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: notBefore, NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, o.cert, key.Public(), o.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) + o.pem,
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestImportIntoHostedBundle: a certificate from another CA, with 60 days left, imported into a
// hosted bundle: HOSTED at once, T0 the import (its not_before was long ago), the key sealed and
// exported as given, and the records for the bundle's CA returned; the service renews it before it
// expires through its own CA, with the names of the import and a new key.
func TestImportIntoHostedBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 2, true)
	cert := b.GetCertificates()[0].GetCertificateId()
	outside := newOutsideCA(t)
	key := newKey(t)
	chain, keyPEM := outside.issue(t, key, start.Add(-300*day), start.Add(60*day), "shop.example.com")
	resp, err := e.a.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{
		CertificateId: cert, CertificateChainPem: chain, PrivateKeyPem: keyPEM, Contact: contact,
	})
	if err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	c := resp.GetCertificate()
	if c.GetState() != stHosted || c.GetRenewTime() == nil || !c.GetCoverageStartTime().AsTime().Equal(start) {
		t.Fatalf("after the import: %s, renew_time %v, coverage from %v; want HOSTED, a renewal planned, coverage from the import (%v)",
			c.GetState(), c.GetRenewTime(), c.GetCoverageStartTime().AsTime(), start)
	}
	if len(resp.GetInstructions()) != 1 || resp.GetInstructions()[0].GetType() != "TXT" {
		t.Fatalf("instructions %v, want the local CA's TXT record", resp.GetInstructions())
	}
	exported, err := e.a.ExportCertificate(e.ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: cert})
	if err != nil {
		t.Fatalf("ExportCertificate: %v", err)
	}
	if exported.GetIssuance().GetCertificateChainPem() != chain || samePrivateKey(t, exported.GetPrivateKeyPem(), key) == false {
		t.Error("the exported chain or key is not the imported one")
	}
	if got := e.bundle(b.GetBundleId()); got.GetCurrentCertificateId() != cert || got.GetHostingStatus() != hostingActive {
		t.Errorf("bundle: current certificate %q, hosting %s; want %s, ACTIVE", got.GetCurrentCertificateId(), got.GetHostingStatus(), cert)
	}
	if n := countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_IMPORTED); n != 1 {
		t.Errorf("%d IMPORTED events, want 1", n)
	}

	// The customer publishes the records; the renewal, 20 days before the import's end (a third
	// of its 360-day lifetime would be more: the default caps at 30 days), is the bundle's CA's.
	e.publish(resp.GetInstructions())
	e.advance(45*day, nil)
	c = e.certificate(cert)
	if c.GetState() != stHosted || c.GetCurrentIssuance().GetIssuanceId() == resp.GetCertificate().GetCurrentIssuance().GetIssuanceId() {
		t.Fatalf("45 days after the import: %s with issuance %s; want HOSTED with a renewed certificate", c.GetState(),
			c.GetCurrentIssuance().GetIssuanceId())
	}
	renewed := c.GetCurrentIssuance()
	if !strings.Contains(renewed.GetCertificateChainPem(), "BEGIN CERTIFICATE") || renewed.GetCertificateChainPem() == chain {
		t.Error("the renewed chain is not a new certificate")
	}
	verifyChainAt(t, e.authority.Roots(), renewed.GetCertificateChainPem(), e.clk.Now())
	if got := c.GetCurrentApplication(); !got.GetAutomatic() || got.GetDomains()[0] != "shop.example.com" || got.GetContact().GetEmail() != contact.GetEmail() {
		t.Errorf("renewal application %v, want automatic, with the import's names and the contact given", got)
	}
	if got := renewed.GetNotAfter().AsTime(); !got.Equal(c.GetCoverageEndTime().AsTime()) && got.Sub(renewed.GetNotBefore().AsTime()) < 199*day {
		t.Errorf("renewed certificate ends at %v: neither the year's end nor a full 200-day certificate", got)
	}
}

// samePrivateKey reports whether the PEM key is key.
func samePrivateKey(t *testing.T, keyPEM string, key crypto.Signer) bool {
	t.Helper()
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil {
		return false
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return false
	}
	s, ok := k.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && s.Equal(key)
}

// TestImportRefused: every way an import can be wrong gets InvalidArgument naming the field and
// the reason (or FailedPrecondition for an instance not waiting for one), and nothing is written.
func TestImportRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	outside := newOutsideCA(t)
	key := newKey(t)
	good, goodKey := outside.issue(t, key, start.Add(-day), start.Add(90*day), "shop.example.com")
	leafOnly := good[:strings.Index(good, "-----END CERTIFICATE-----")+len("-----END CERTIFICATE-----\n")]
	expired, expiredKey := outside.issue(t, key, start.Add(-100*day), start.Add(-day), "shop.example.com")
	future, futureKey := outside.issue(t, key, start.Add(day), start.Add(90*day), "shop.example.com")
	two, twoKey := outside.issue(t, key, start.Add(-day), start.Add(90*day), "shop.example.com", "www.example.com")
	wild, wildKey := outside.issue(t, key, start.Add(-day), start.Add(90*day), "*.example.com")
	_, otherKey := outside.issue(t, newKey(t), start.Add(-day), start.Add(90*day), "shop.example.com")
	other := newOutsideCA(t)
	unlinked := leafOnly + other.pem
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakChain, weakKey := outside.issue(t, weak, start.Add(-day), start.Add(90*day), "shop.example.com")
	encrypted := "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
	ev := e.buy("ev-single", lifecyclev1.ValidationType_VALIDATION_TYPE_EV, single, 1, 2, false).GetCertificates()[0].GetCertificateId()
	for _, tc := range []struct {
		name       string
		cert       string
		chain, key string
		contact    *lifecyclev1.Contact
		code       codes.Code
		mention    string
	}{
		{"no chain", cert, "", goodKey, contact, codes.InvalidArgument, "certificate_chain_pem: is required"},
		{"chain not PEM", cert, "garbage", goodKey, contact, codes.InvalidArgument, "certificate_chain_pem: holds no PEM CERTIFICATE"},
		{"chain does not link", cert, unlinked, goodKey, contact, codes.InvalidArgument, "does not link"},
		{"key does not match", cert, good, otherKey, contact, codes.InvalidArgument, "private_key_pem: does not match the certificate"},
		{"expired", cert, expired, expiredKey, contact, codes.InvalidArgument, "expired at"},
		{"not yet valid", cert, future, futureKey, contact, codes.InvalidArgument, "not valid before"},
		{"two names on a single product", cert, two, twoKey, contact, codes.InvalidArgument, "do not fit the bundle's single product"},
		{"wildcard on a single product", cert, wild, wildKey, contact, codes.InvalidArgument, "cannot hold a wildcard"},
		{"weak key", cert, weakChain, weakKey, contact, codes.InvalidArgument, "RSA key of 1024 bits"},
		{"encrypted key", cert, good, encrypted, contact, codes.InvalidArgument, "is encrypted"},
		{"no key", cert, good, "", contact, codes.InvalidArgument, "private_key_pem: is required"},
		{"no contact", cert, good, goodKey, nil, codes.InvalidArgument, "contact.email"},
		{"EV without organization", ev, good, goodKey, contact, codes.InvalidArgument, "organization"},
		{"not waiting for an application", b.GetCertificates()[1].GetCertificateId(), good, goodKey, contact,
			codes.FailedPrecondition, "NOT_ACTIVATED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{
				CertificateId: tc.cert, CertificateChainPem: tc.chain, PrivateKeyPem: tc.key, Contact: tc.contact,
			})
			wantRefused(t, "ImportCertificate", err, tc.code, tc.mention)
		})
	}
	if c := e.certificate(cert); c.GetState() != pending || c.GetCurrentApplication() != nil {
		t.Errorf("after the refused imports the instance is %s with application %v; want PENDING_APPLICATION, none", c.GetState(), c.GetCurrentApplication())
	}
	_, err = e.b.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{CertificateId: cert, CertificateChainPem: good,
		PrivateKeyPem: goodKey, Contact: contact})
	wantRefused(t, "another account's import", err, codes.NotFound, cert)

	// The good one, into the non-hosted bundle: ISSUED, and importing again is refused.
	resp, err := e.a.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{CertificateId: cert, CertificateChainPem: leafOnly,
		PrivateKeyPem: goodKey, Contact: contact})
	if err != nil {
		t.Fatalf("ImportCertificate of the leaf alone: %v", err)
	}
	if c := resp.GetCertificate(); c.GetState() != stIssued || c.GetRenewTime() != nil {
		t.Errorf("imported into a bundle without hosting: %s, renew_time %v; want ISSUED, no renewal", c.GetState(), c.GetRenewTime())
	}
	_, err = e.a.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{CertificateId: cert, CertificateChainPem: good,
		PrivateKeyPem: goodKey, Contact: contact})
	wantRefused(t, "importing twice", err, codes.FailedPrecondition, "ISSUED")
}
