package lifecycle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Key algorithms, as stored.
const (
	KeyECDSAP256 = "ECDSA_P256"
	KeyECDSAP384 = "ECDSA_P384"
	KeyRSA2048   = "RSA_2048"
	KeyRSA3072   = "RSA_3072"
	KeyRSA4096   = "RSA_4096"
	KeyCustomer  = "CUSTOMER" // the customer's CSR; the service never sees the key
)

// generateKey makes a new private key of the algorithm. Every application of a hosted bundle
// gets a fresh one, so each renewal rotates the key.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key algorithm %q", alg)
}

// makeCSR builds the DER CSR for domains (the first is the common name) with key.
func makeCSR(key crypto.Signer, domains []string) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: domains[0]},
		DNSNames: domains,
	}, key)
}

// marshalKey encodes a private key as PKCS#8 DER.
func marshalKey(key crypto.Signer) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(key) }

// keyPEM encodes PKCS#8 DER as PEM.
func keyPEM(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// parseCustomerCSR checks a customer's CSR: well formed, self-signed correctly, a key of an
// accepted strength, and exactly the application's names.
func parseCustomerCSR(csrPEM string, domains []string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, errors.New("signature does not verify")
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("ECDSA key must be on P-256 or P-384")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key must have at least 2048 bits, has %d", k.N.BitLen())
		}
	default:
		return nil, fmt.Errorf("key type %T is not accepted (ECDSA P-256/P-384 or RSA ≥ 2048)", csr.PublicKey)
	}
	names := map[string]bool{}
	for _, n := range csr.DNSNames {
		names[strings.ToLower(n)] = true
	}
	if csr.Subject.CommonName != "" {
		names[strings.ToLower(csr.Subject.CommonName)] = true
	}
	want := slices.Clone(domains)
	if len(names) != len(want) {
		return nil, fmt.Errorf("names %v do not match domains %v", mapKeys(names), want)
	}
	for _, d := range want {
		if !names[d] {
			return nil, fmt.Errorf("does not name %q", d)
		}
	}
	return csr, nil
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// parsedChain is an issued chain, checked against its application.
type parsedChain struct {
	leaf *x509.Certificate
	pem  string
}

// checkChain parses the CA's chain (leaf first) and checks it is what was applied for: the leaf's
// public key is the application's, and it names exactly the application's domains. A CA that
// answers otherwise is not trusted with the customer's traffic.
func checkChain(chainPEM []byte, pub crypto.PublicKey, domains []string) (parsedChain, error) {
	var certs []*x509.Certificate
	rest := chainPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return parsedChain{}, fmt.Errorf("chain does not parse: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return parsedChain{}, errors.New("chain holds no certificate")
	}
	leaf := certs[0]
	leafKey, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil {
		return parsedChain{}, err
	}
	wantKey, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return parsedChain{}, err
	}
	if !bytes.Equal(leafKey, wantKey) {
		return parsedChain{}, errors.New("the certificate's public key is not the application's")
	}
	got := slices.Clone(leaf.DNSNames)
	slices.Sort(got)
	want := slices.Clone(domains)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return parsedChain{}, fmt.Errorf("the certificate names %v, the application %v", got, want)
	}
	return parsedChain{leaf: leaf, pem: string(chainPEM)}, nil
}

// parsePKCS8 decodes a PKCS#8 DER private key into a signer.
func parsePKCS8(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T cannot sign", k)
	}
	return s, nil
}
