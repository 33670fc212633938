package lifecycle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// FuzzNormalizeDomain: any name is either refused as the client's mistake (InvalidArgument) or
// normalized to lower-case A-labels of at most 253 characters with at most a leading "*.", and
// normalizing that again changes nothing. The public-suffix check never panics either.
func FuzzNormalizeDomain(f *testing.F) {
	for _, seed := range []string{"shop.example.com", "*.example.com", "Bücher.example", "xn--bcher-kva.example", "co.uk",
		"*.co.uk", "192.0.2.1", "2001:db8::1", "a..b", "", ".", "*.*.example.com", "shop_1.example.com", "example.123",
		strings.Repeat("a", 64) + ".com", "\x00.com", "ｅｘａｍｐｌｅ.com"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		d, wildcard, err := normalizeDomain("domains[0]", name)
		if err != nil {
			if !apierr.IsClientError(err) {
				t.Fatalf("normalizeDomain(%q) = %v: not the client's error", name, err)
			}
			return
		}
		if len(d) > 253 || d != strings.ToLower(d) || strings.Count(d, "*") != map[bool]int{true: 1, false: 0}[wildcard] ||
			(wildcard && !strings.HasPrefix(d, "*.")) {
			t.Fatalf("normalizeDomain(%q) = %q, %v: not a normalized name", name, d, wildcard)
		}
		again, wild2, err := normalizeDomain("domains[0]", d)
		if err != nil || again != d || wild2 != wildcard {
			t.Fatalf("normalizeDomain(%q) = %q, but normalizing that again gives %q, %v", name, d, again, err)
		}
		if err := underPublicSuffix("domains[0]", d); err != nil && !apierr.IsClientError(err) {
			t.Fatalf("underPublicSuffix(%q) = %v", d, err)
		}
	})
}

// FuzzParseCustomerCSR: any text as a customer's CSR is accepted or refused, never a panic.
func FuzzParseCustomerCSR(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "shop.example.com"},
		DNSNames: []string{"shop.example.com"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), "shop.example.com")
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", "x.example.com")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, csrPEM, domain string) {
		_, _ = parseCustomerCSR(csrPEM, []string{domain})
	})
}

// FuzzImport: any chain and key text given to ImportCertificate is imported or refused with
// InvalidArgument, never a panic or an internal error.
func FuzzImport(f *testing.F) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Fuzz CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour * 24 * 365), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "shop.example.com"}, DNSNames: []string{"shop.example.com"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(90 * 24 * time.Hour)}, caCert, key.Public(), caKey)
	if err != nil {
		f.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	chain := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	f.Add(chain, keyPEM)
	f.Add(chain, "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n")
	f.Add("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", keyPEM)
	f.Add("", "")
	b := store.Bundle{ID: "bdl_fuzz", ValidationType: "DV", DomainType: "MULTI", DomainCount: 3}
	f.Fuzz(func(t *testing.T, chainPEM, keyPEM string) {
		_, err := checkImport(b, &lifecyclev1.ImportCertificateRequest{CertificateChainPem: chainPEM, PrivateKeyPem: keyPEM}, now)
		if err != nil && !apierr.IsClientError(err) {
			t.Fatalf("checkImport = %v: not the client's error", err)
		}
	})
}
