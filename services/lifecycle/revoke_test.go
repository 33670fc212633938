package lifecycle_test

import (
	"crypto"
	"crypto/x509"
	"testing"

	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/tlstest"
)

const stRevoked = lifecyclev1.CertificateState_CERTIFICATE_STATE_REVOKED

// revokedSerials are the serials on the local CA's CRL.
func (e *env) revokedSerials() map[string]int {
	e.t.Helper()
	der, err := e.authority.CRL(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]int{}
	for _, en := range crl.RevokedCertificateEntries {
		out[en.SerialNumber.Text(16)] = en.ReasonCode
	}
	return out
}

func (e *env) revoke(c lifecyclev1.LifecycleServiceClient, certID string, reason lifecyclev1.RevocationReason) (*lifecyclev1.Certificate, error) {
	resp, err := c.RevokeCertificate(e.ctx, &lifecyclev1.RevokeCertificateRequest{CertificateId: certID, Reason: reason})
	return resp.GetCertificate(), err
}

// TestRevokeHostedKeyCompromise: a hosted certificate revoked for keyCompromise is on the local
// CA's CRL with its reason, the instance is REVOKED and the bundle's coverage lapsed, and its
// replacement, with a new key, is applied for at once and hosted in the next tick.
func TestRevokeHostedKeyCompromise(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	before := e.certificate(cert).GetCurrentIssuance()
	e.clk.Advance(10 * day)
	got, err := e.revoke(e.a, cert, lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE)
	if err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	if got.GetState() != stRevoked || got.GetRenewalStatus() != renewalPending || got.GetCurrentIssuance().GetRevokeTime() == nil ||
		got.GetCurrentIssuance().GetRevocationReason() != lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE {
		t.Fatalf("after the revocation: %s, renewal %s, issuance revoked at %v for %s; want REVOKED, PENDING, revoked for KEY_COMPROMISE",
			got.GetState(), got.GetRenewalStatus(), got.GetCurrentIssuance().GetRevokeTime(), got.GetCurrentIssuance().GetRevocationReason())
	}
	if reason, ok := e.revokedSerials()[before.GetSerialNumber()]; !ok || reason != 1 {
		t.Errorf("CRL: serial %s listed %v with reason %d; want listed, keyCompromise (1)", before.GetSerialNumber(), ok, reason)
	}
	if bs := e.bundle(b.GetBundleId()); bs.GetHostingStatus() != lifecyclev1.HostingStatus_HOSTING_STATUS_LAPSED || bs.GetCurrentCertificateId() != "" {
		t.Errorf("bundle after the revocation: %s, current %q; want LAPSED, none", bs.GetHostingStatus(), bs.GetCurrentCertificateId())
	}
	_, err = e.revoke(e.a, cert, lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE)
	wantRefused(t, "revoking twice", err, codes.FailedPrecondition, "REVOKED")

	e.tick()
	c := e.certificate(cert)
	if c.GetState() != stHosted || c.GetCurrentIssuance().GetIssuanceId() == before.GetIssuanceId() || c.GetRenewTime() == nil {
		t.Fatalf("after the replacement: %s with issuance %s, renew_time %v; want HOSTED with a new certificate and a renewal planned",
			c.GetState(), c.GetCurrentIssuance().GetIssuanceId(), c.GetRenewTime())
	}
	oldLeaf, _ := tlstest.ParseChain(t, []byte(before.GetCertificateChainPem()))
	newLeaf, _ := tlstest.ParseChain(t, []byte(c.GetCurrentIssuance().GetCertificateChainPem()))
	if oldLeaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(newLeaf.PublicKey) {
		t.Error("the replacement has the compromised key")
	}
	if !c.GetCurrentIssuance().GetNotAfter().AsTime().After(before.GetNotAfter().AsTime()) {
		t.Errorf("the replacement ends %v, not after the revoked one (%v)", c.GetCurrentIssuance().GetNotAfter().AsTime(), before.GetNotAfter().AsTime())
	}
	if bs := e.bundle(b.GetBundleId()); bs.GetHostingStatus() != hostingActive || bs.GetCurrentCertificateId() != cert {
		t.Errorf("bundle after the replacement: %s, current %q; want ACTIVE, %s", bs.GetHostingStatus(), bs.GetCurrentCertificateId(), cert)
	}
	h := e.history(cert)
	if countEvents(h, lifecyclev1.EventType_EVENT_TYPE_REVOKED) != 1 || countEvents(h, lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED) != 1 {
		t.Errorf("history %v, want one REVOKED and one RENEWAL_STARTED", h)
	}
}

// TestRevokeWithoutHosting: a certificate without hosting revoked because it is no longer used
// is REVOKED with no replacement; the customer can re-issue it within its year.
func TestRevokeWithoutHosting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	e.issue(application(cert, "shop.example.com"))
	got, err := e.revoke(e.a, cert, lifecyclev1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION)
	if err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	if got.GetState() != stRevoked || got.GetRenewalStatus() != lifecyclev1.RenewalStatus_RENEWAL_STATUS_UNSPECIFIED {
		t.Fatalf("after the revocation: %s, renewal %s; want REVOKED, none", got.GetState(), got.GetRenewalStatus())
	}
	if n := e.tick(); n.Submitted != 0 {
		t.Errorf("%d applications submitted after revoking a certificate without hosting, want none", n.Submitted)
	}
	if _, err := e.reissue(cert); err != nil {
		t.Fatalf("ReissueCertificate of the revoked certificate: %v", err)
	}
	e.tick()
	if c := e.certificate(cert); c.GetState() != stIssued || c.GetCurrentIssuance().GetRevokeTime() != nil {
		t.Errorf("after the re-issue: %s, revoked %v; want ISSUED with a certificate not revoked", c.GetState(), c.GetCurrentIssuance().GetRevokeTime())
	}
}

// TestRevokeRefused: bad reasons, the wrong state, another account, an imported certificate and an
// unreachable CA are refused with their codes, and nothing changes.
func TestRevokeRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	e.issue(application(cert, "shop.example.com"))
	outside := newOutsideCA(t)
	imported := e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId()
	chain, keyPEM := outside.issue(t, newKey(t), start.Add(-day), start.Add(90*day), "imported.example.com")
	if _, err := e.a.ImportCertificate(e.ctx, &lifecyclev1.ImportCertificateRequest{CertificateId: imported,
		CertificateChainPem: chain, PrivateKeyPem: keyPEM, Contact: contact}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		client  lifecyclev1.LifecycleServiceClient
		id      string
		reason  lifecyclev1.RevocationReason
		code    codes.Code
		mention string
	}{
		{"reason for CAs", e.a, cert, 2, codes.InvalidArgument, "reason"},
		{"unknown reason", e.a, cert, 42, codes.InvalidArgument, "reason"},
		{"malformed id", e.a, "crt_x", 0, codes.InvalidArgument, "certificate_id"},
		{"another account's", e.b, cert, 0, codes.NotFound, cert},
		{"not issued", e.a, b.GetCertificates()[1].GetCertificateId(), 0, codes.FailedPrecondition, "NOT_ACTIVATED"},
		{"imported", e.a, imported, 0, codes.FailedPrecondition, "imported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.revoke(tc.client, tc.id, tc.reason)
			wantRefused(t, "RevokeCertificate", err, tc.code, tc.mention)
		})
	}
	e.ca.down.Store(true)
	_, err := e.revoke(e.a, cert, lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE)
	wantRefused(t, "revoking while the CA is down", err, codes.Unavailable, "nothing was revoked")
	e.ca.down.Store(false)
	if c := e.certificate(cert); c.GetState() != stIssued || c.GetCurrentIssuance().GetRevokeTime() != nil || len(e.revokedSerials()) != 0 {
		t.Errorf("after the refusals: %s, revoked %v, CRL %v; want ISSUED, not revoked, an empty CRL", c.GetState(),
			c.GetCurrentIssuance().GetRevokeTime(), e.revokedSerials())
	}
}

// TestRenewCertificateNow: RenewCertificate renews a hosted certificate at once with a new key;
// the certificate in use stays until the successor is issued; a second call while it is in
// flight, and a bundle without hosting, are refused.
func TestRenewCertificateNow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	before := e.certificate(cert).GetCurrentIssuance()
	e.clk.Advance(10 * day)
	resp, err := e.a.RenewCertificate(e.ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: cert})
	if err != nil {
		t.Fatalf("RenewCertificate: %v", err)
	}
	if c := resp.GetCertificate(); c.GetState() != stHosted || c.GetRenewalStatus() != renewalPending ||
		c.GetCurrentIssuance().GetIssuanceId() != before.GetIssuanceId() {
		t.Fatalf("renewal asked for: %s, renewal %s, issuance %s; want HOSTED, PENDING, the certificate in use", c.GetState(),
			c.GetRenewalStatus(), c.GetCurrentIssuance().GetIssuanceId())
	}
	_, err = e.a.RenewCertificate(e.ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: cert})
	wantRefused(t, "a second renewal in flight", err, codes.FailedPrecondition, "in flight")
	e.tick()
	c := e.certificate(cert)
	if c.GetCurrentIssuance().GetIssuanceId() == before.GetIssuanceId() || c.GetState() != stHosted {
		t.Fatalf("after the tick: %s, issuance %s; want HOSTED with a new certificate", c.GetState(), c.GetCurrentIssuance().GetIssuanceId())
	}
	plain := e.buy("dv-single", dv, single, 1, 2, false)
	_, err = e.a.RenewCertificate(e.ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: plain.GetCertificates()[0].GetCertificateId()})
	wantRefused(t, "RenewCertificate without hosting", err, codes.FailedPrecondition, "not hosted")
}
