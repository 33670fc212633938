// Package tlstest is for tests of TLS, mutual TLS and issued certificates: throwaway PKIs (a CA
// made per test, and server and client certificates it signs, as PEM in memory or as files in the
// test's directory; nothing is read from disk or shared between tests), and ParseChain for the
// chains a CA issues.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a root that signs test certificates.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the root certificate, what a peer trusts.
	PEM []byte
}

// Pair is a certificate and its key, PEM-encoded.
type Pair struct {
	CertPEM, KeyPEM []byte
}

// Files are where WriteFiles put a pair and its CA.
type Files struct {
	Cert, Key, CA string
}

// NewCA makes a root valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{cert: cert, key: key, PEM: pemBlock("CERTIFICATE", der)}
}

// Server issues a certificate for 127.0.0.1, ::1 and localhost, for TLS servers on loopback.
func (c *CA) Server(t testing.TB) Pair {
	t.Helper()
	return c.issue(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
	})
}

// Client issues a client certificate named name, for mutual TLS.
func (c *CA) Client(t testing.TB, name string) Pair {
	t.Helper()
	return c.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func (c *CA) issue(t testing.TB, tmpl *x509.Certificate) Pair {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial(t), now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", keyDER)}
}

// Pool is a certificate pool holding the CA, for tls.Config's RootCAs or ClientCAs.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// TLS is the pair as a tls.Certificate.
func (p Pair) TLS(t testing.TB) tls.Certificate {
	t.Helper()
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// WriteFiles writes the pair and the CA that signed it to dir as name.crt, name.key and
// name-ca.crt (the key readable by its owner only).
func (p Pair) WriteFiles(t testing.TB, dir, name string, c *CA) Files {
	t.Helper()
	f := Files{Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key"), CA: filepath.Join(dir, name+"-ca.crt")}
	for file, b := range map[string][]byte{f.Cert: p.CertPEM, f.Key: p.KeyPEM, f.CA: c.PEM} {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Certs parses every certificate of a PEM chain, in order. It fails the test on one that does not
// parse, or on a chain with none.
func Certs(t testing.TB, chainPEM []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("chain: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatal("chain holds no PEM certificate")
	}
	return certs
}

// ParseChain splits a PEM chain, leaf first, into the leaf and a pool of the certificates after
// it, for x509.VerifyOptions.Intermediates. It fails the test unless there are at least two.
func ParseChain(t testing.TB, chainPEM []byte) (leaf *x509.Certificate, intermediates *x509.CertPool) {
	t.Helper()
	certs := Certs(t, chainPEM)
	if len(certs) < 2 {
		t.Fatalf("chain has %d certificates, want the leaf and at least one intermediate", len(certs))
	}
	intermediates = x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	return certs[0], intermediates
}
