package localca_test

import (
	"errors"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
)

// TestRevoke: a revoked certificate is on the CRL, signed by the intermediate, with its reason and
// time; the CRL's distribution point is in every certificate; revoking again keeps the first
// reason; a certificate of another CA is refused for good; an expired revoked certificate leaves
// the list.
func TestRevoke(t *testing.T) {
	const url = "http://127.0.0.1:50080/crl/local.crl"
	e := newEnv(t, func(c *localca.Config) { c.CRLURL = url; c.MaxValidity = 90 * day })
	issue := func(id, name string) []byte {
		sub := e.submit(dvRequest(t, id, name))
		e.publish(sub.Instructions...)
		st := e.status(sub.Ref)
		if st.State != ca.Issued {
			t.Fatalf("status = %+v, want issued", st)
		}
		return st.ChainPEM
	}
	revoked, kept := issue("r1", "revoked.example.com"), issue("r2", "kept.example.com")
	leaf := e.verify(revoked, "revoked.example.com")
	if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != url {
		t.Errorf("CRL distribution points %v, want [%s]", leaf.CRLDistributionPoints, url)
	}
	if err := e.ca.Revoke(t.Context(), revoked, ca.RevokeKeyCompromise); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := e.ca.Revoke(t.Context(), revoked, ca.RevokeSuperseded); err != nil {
		t.Fatalf("Revoke again: %v", err)
	}
	other := newEnv(t)
	sub := other.submit(dvRequest(t, "o1", "other.example.com"))
	other.publish(sub.Instructions...)
	foreign := other.status(sub.Ref).ChainPEM
	if err := e.ca.Revoke(t.Context(), foreign, ca.RevokeKeyCompromise); !errors.Is(err, ca.ErrNotRevocable) {
		t.Errorf("revoking another CA's certificate: %v, want ErrNotRevocable", err)
	}

	crl := e.crl()
	if len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL lists %d certificates, want 1", len(crl.RevokedCertificateEntries))
	}
	entry := crl.RevokedCertificateEntries[0]
	if entry.SerialNumber.Cmp(leaf.SerialNumber) != 0 || entry.ReasonCode != int(ca.RevokeKeyCompromise) || !entry.RevocationTime.Equal(start.Truncate(time.Second)) {
		t.Errorf("CRL entry %v reason %d at %v; want serial %v, keyCompromise (the first reason), at %v", entry.SerialNumber,
			entry.ReasonCode, entry.RevocationTime, leaf.SerialNumber, start)
	}
	keptLeaf := e.verify(kept, "kept.example.com")
	for _, en := range crl.RevokedCertificateEntries {
		if en.SerialNumber.Cmp(keptLeaf.SerialNumber) == 0 {
			t.Error("the certificate not revoked is on the CRL")
		}
	}
	first := crl.Number

	e.clk.Advance(91 * day)
	crl = e.crl()
	if len(crl.RevokedCertificateEntries) != 0 || crl.Number.Cmp(first) <= 0 {
		t.Errorf("after the revoked certificate expired: %d entries, number %v after %v; want none, a higher number",
			len(crl.RevokedCertificateEntries), crl.Number, first)
	}
}
