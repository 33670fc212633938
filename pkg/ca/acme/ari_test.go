package acme_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/pebbletest"
)

// TestRenewalInfo: RenewalInfo returns Pebble's own window for an issued certificate (inside its
// validity, with Pebble's Retry-After), and a window forced through the management API exactly,
// with its explanation URL.
func TestRenewalInfo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	chain, _ := e.issue(e.client, request(t, "app-ari", "bdl_ari", "ari.example.com"))
	leaf := e.verify(chain, "ari.example.com")

	w, ok, err := e.client.RenewalInfo(t.Context(), chain)
	if err != nil || !ok {
		t.Fatalf("RenewalInfo = %v, %v; want Pebble's window", ok, err)
	}
	if !w.Start.After(leaf.NotBefore) || !w.End.After(w.Start) || w.End.After(leaf.NotAfter) {
		t.Errorf("window [%s, %s] is not inside the validity [%s, %s]", w.Start, w.End, leaf.NotBefore, leaf.NotAfter)
	}
	if w.RetryAfter != 6*time.Hour {
		t.Errorf("RetryAfter %v, want Pebble's 6h", w.RetryAfter)
	}
	if start, end, err := e.pebble.RenewalWindow(t.Context(), chain); err != nil || !start.Equal(w.Start) || !end.Equal(w.End) {
		t.Errorf("the client's window [%s, %s]; Pebble's renewalInfo, read directly: [%s, %s], %v", w.Start, w.End, start, end, err)
	}

	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	end := start.Add(2 * time.Hour)
	const why = "https://pebble.test/incident/42"
	if err := e.pebble.SetRenewalInfo(t.Context(), chain, start, end, why); err != nil {
		t.Fatal(err)
	}
	w, ok, err = e.client.RenewalInfo(t.Context(), chain)
	if err != nil || !ok {
		t.Fatalf("RenewalInfo after forcing = %v, %v", ok, err)
	}
	if !w.Start.Equal(start) || !w.End.Equal(end) || w.ExplanationURL != why {
		t.Errorf("window [%s, %s] %q, want the forced [%s, %s] %q", w.Start, w.End, w.ExplanationURL, start, end, why)
	}
}

// TestReplaces: a renewal names the certificate it replaces and Pebble accepts it; a second
// renewal of the same certificate (alreadyReplaced) and a renewal naming a certificate Pebble never
// issued both fall back to an order without replaces and are issued.
func TestReplaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	const replaced = "is a replacement of"
	first, _ := e.issue(e.client, request(t, "app-1", "bdl_rep", "rep.example.com"))

	tests := []struct {
		name         string
		replaces     []byte
		replacements int // "replacement" lines in Pebble's log afterwards
	}{
		{"renewal names the first certificate", first, 1},
		{"the same certificate replaced twice: alreadyReplaced", first, 1},
		{"a certificate Pebble never issued", foreignCertificate(t), 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, "app-renew-"+string(rune('a'+i)), "bdl_rep", "rep.example.com")
			req.Replaces = tc.replaces
			chain, _ := e.issue(e.client, req)
			e.verify(chain, "rep.example.com")
			if n := e.pebble.Count(replaced); n != tc.replacements {
				t.Errorf("Pebble logged %d replacement orders, want %d", n, tc.replacements)
			}
		})
	}
}

// foreignCertificate is a certificate with an authority key id that no Pebble issued.
func foreignCertificate(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(424242), Subject: pkix.Name{CommonName: "rep.example.com"},
		DNSNames: []string{"rep.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		AuthorityKeyId: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
