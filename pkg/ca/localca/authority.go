package localca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Lifetimes of the CA's own certificates, from its first start.
const (
	rootValidity         = 25 * 365 * 24 * time.Hour
	intermediateValidity = 10 * 365 * 24 * time.Hour
)

// issuer is a CA certificate with its private key.
type issuer struct {
	cert *x509.Certificate
	pem  []byte
	key  crypto.Signer
}

// newHierarchy makes a root and an intermediate signed by it, both starting at now. Their common
// names carry a random tag, so certificates from two local CAs (two developers' databases) are
// told apart at a glance.
func newHierarchy(now time.Time) (root, intermediate *issuer, err error) {
	tagBytes := make([]byte, 4)
	if _, err := rand.Read(tagBytes); err != nil {
		return nil, nil, err
	}
	tag := hex.EncodeToString(tagBytes)
	now = now.UTC().Truncate(time.Second)

	if root, err = newIssuer(caTemplate("root "+tag, now, rootValidity), elliptic.P384(), nil); err != nil {
		return nil, nil, fmt.Errorf("root: %w", err)
	}
	tmpl := caTemplate("intermediate "+tag, now, intermediateValidity)
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} // it certifies TLS servers only
	tmpl.MaxPathLenZero = true                                        // and leaves only
	if intermediate, err = newIssuer(tmpl, elliptic.P256(), root); err != nil {
		return nil, nil, fmt.Errorf("intermediate: %w", err)
	}
	return root, intermediate, nil
}

// caTemplate is a CA certificate named "certhosting local <name>", valid from now.
func caTemplate(name string, now time.Time, validity time.Duration) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{Organization: []string{"certhosting local CA"}, CommonName: "certhosting local " + name},
		NotBefore:             now,
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// newIssuer makes a key on curve and the certificate tmpl for it, with a fresh serial, signed by
// parent (self-signed when parent is nil).
//
// The root's key is ECDSA P-384, as public roots of this decade use; it signs once, the
// intermediate. The intermediate, which signs every leaf, is ECDSA P-256 (128-bit security, like
// the leaves it certifies): Go's P-256 is assembly, its P-384 is not, and x509.CreateCertificate
// verifies each signature it makes, so a P-384 intermediate spent 0.9 ms of CPU per leaf (a
// quarter of a completed renewal's CPU in `make bench-renew`'s profile) where P-256 spends about
// a tenth of that. A CA created before this keeps its P-384 intermediate until it is rotated.
func newIssuer(tmpl *x509.Certificate, curve elliptic.Curve, parent *issuer) (*issuer, error) {
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, err
	}
	parentCert, parentKey := tmpl, crypto.Signer(key)
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &issuer{cert: cert, pem: pemCert(der), key: key}, nil
}

// newSerial is a positive 128-bit random serial: more than the 64 bits of entropy the Baseline
// Requirements ask for, and unguessable, so nobody can craft a colliding certificate in advance.
func newSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if s := new(big.Int).SetBytes(b); s.Sign() > 0 {
			return s, nil
		}
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// parseIssuer rebuilds an issuer from its stored certificate and its (unsealed) PKCS #8 key, and
// checks that the two belong together.
func parseIssuer(certPEM, keyDER []byte) (*issuer, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("stored certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("stored key of type %T cannot sign", k)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("stored key does not match its certificate")
	}
	return &issuer{cert: cert, pem: certPEM, key: key}, nil
}

// Certificate policy identifiers of the CA/Browser Forum, one per validation type: a relying
// party (or a test) reads the validation level from the certificate.
var policyOIDs = map[string]x509.OID{
	"DV": mustOID(2, 23, 140, 1, 2, 1),
	"OV": mustOID(2, 23, 140, 1, 2, 2),
	"EV": mustOID(2, 23, 140, 1, 1),
}

func mustOID(ints ...uint64) x509.OID {
	oid, err := x509.OIDFromInts(ints)
	if err != nil {
		panic(err)
	}
	return oid
}

// leafTemplate is the certificate an application gets, not yet signed: names from the domains,
// organization in the subject for OV and EV, usages of a TLS server certificate.
func leafTemplate(app application, pub crypto.PublicKey, notBefore, notAfter time.Time) *x509.Certificate {
	subject := pkix.Name{CommonName: app.Domains[0]}
	if o := app.Organization; o != nil && app.Validation != "DV" {
		subject.Organization = []string{o.LegalName}
		subject.Country = []string{o.Country}
		subject.Locality = []string{o.Locality}
		if o.StateOrProvince != "" {
			subject.Province = []string{o.StateOrProvince}
		}
		if app.Validation == "EV" {
			subject.SerialNumber = o.RegistrationNumber
		}
	}
	usage := x509.KeyUsageDigitalSignature
	if _, ok := pub.(*rsa.PublicKey); ok {
		usage |= x509.KeyUsageKeyEncipherment // RSA key exchange (TLS 1.2 without forward secrecy)
	}
	return &x509.Certificate{
		Subject:               subject,
		DNSNames:              app.Domains,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              usage,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		Policies:              []x509.OID{policyOIDs[app.Validation]},
	}
}

// validity is the leaf's lifetime from now: not_before is now to the second; not_after is the
// earliest of the requested end (or, without one, not_before + the requested lifetime), now +
// maxValidity and the intermediate's own end (a certificate must not outlive its issuer).
func validity(now, requested time.Time, lifetime, maxValidity time.Duration, issuerNotAfter time.Time) (notBefore, notAfter time.Time) {
	notBefore = now.UTC().Truncate(time.Second)
	notAfter = notBefore.Add(maxValidity)
	if !requested.IsZero() {
		notAfter = minTime(notAfter, requested.UTC().Truncate(time.Second))
	} else if lifetime > 0 {
		notAfter = minTime(notAfter, notBefore.Add(lifetime))
	}
	return notBefore, minTime(notAfter, issuerNotAfter.UTC())
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// issueLeaf signs the leaf for app, valid from now. A requested end already passed is a policy
// verdict (problem); failures of the signing itself are errors.
func (c *CA) issueLeaf(app application, now time.Time) (leaf *x509.Certificate, certPEM []byte, problem string, err error) {
	csr, err := x509.ParseCertificateRequest(app.CSR)
	if err != nil {
		return nil, nil, "", fmt.Errorf("stored CSR of %s: %w", app.Ref, err) // it parsed at Submit
	}
	notBefore, notAfter := validity(now, app.RequestedNotAfter, app.RequestedLifetime, c.maxValidity, c.intermediate.cert.NotAfter)
	if !notAfter.After(notBefore) {
		if !c.intermediate.cert.NotAfter.After(notBefore) {
			return nil, nil, "", fmt.Errorf("the intermediate certificate expired at %s", c.intermediate.cert.NotAfter)
		}
		return nil, nil, fmt.Sprintf("requested not_after %s had passed when domain control was verified",
			app.RequestedNotAfter.UTC().Format(time.RFC3339)), nil
	}
	tmpl := leafTemplate(app, csr.PublicKey, notBefore, notAfter)
	if c.crlURL != "" {
		tmpl.CRLDistributionPoints = []string{c.crlURL}
	}
	if tmpl.SerialNumber, err = newSerial(); err != nil {
		return nil, nil, "", err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.intermediate.cert, csr.PublicKey, c.intermediate.key)
	if err != nil {
		return nil, nil, "", err
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, "", err
	}
	return leaf, pemCert(der), "", nil
}
