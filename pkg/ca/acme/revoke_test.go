package acme_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/certhosting/certhosting/internal/pebbletest"
	"github.com/certhosting/certhosting/pkg/ca"
)

// TestRevoke: a certificate the client ordered is revoked at the CA with the reason given, as
// Pebble's own records show; revoking it again succeeds; another account's certificate is refused
// for good.
func TestRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	e.delegate("bdl_revoke", "revoke.example.com")
	chain, _ := e.issue(e.client, request(t, "app-revoke", "bdl_revoke", "revoke.example.com"))
	leaf := e.verify(chain, "revoke.example.com")
	serial := leaf.SerialNumber.Text(16)
	if st, _, err := e.pebble.CertStatus(t.Context(), serial); err != nil || st != "Valid" {
		t.Fatalf("before the revocation Pebble says %q, %v; want Valid", st, err)
	}
	if err := e.client.Revoke(t.Context(), chain, ca.RevokeKeyCompromise); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	st, reason, err := e.pebble.CertStatus(t.Context(), serial)
	if err != nil || st != "Revoked" || reason != int(ca.RevokeKeyCompromise) {
		t.Fatalf("after the revocation Pebble says %q reason %d, %v; want Revoked, keyCompromise (1)", st, reason, err)
	}
	if err := e.client.Revoke(t.Context(), chain, ca.RevokeKeyCompromise); err != nil {
		t.Errorf("revoking again: %v, want success", err)
	}

	// Another account (a second client on its own database, so its own key) may not revoke it.
	cfg := e.cfg
	cfg.DBPath = filepath.Join(t.TempDir(), "other.db")
	other := e.open(cfg)
	e.delegate("bdl_other", "other.example.com")
	otherChain, _ := e.issue(other, request(t, "app-other", "bdl_other", "other.example.com"))
	if err := e.client.Revoke(t.Context(), otherChain, ca.RevokeKeyCompromise); !errors.Is(err, ca.ErrNotRevocable) {
		t.Errorf("revoking another account's certificate: %v, want ErrNotRevocable", err)
	}
	if err := e.client.Revoke(t.Context(), []byte("not a certificate"), ca.RevokeKeyCompromise); !errors.Is(err, ca.ErrNotRevocable) {
		t.Errorf("revoking garbage: %v, want ErrNotRevocable", err)
	}
}
