package lifecycle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Limits of an import: a chain of a few certificates and one key.
const (
	maxImportChain = 64 << 10
	maxImportKey   = 16 << 10
	// importSkew is how far in the future an imported certificate's not_before may be (clocks
	// differ).
	importSkew = 5 * time.Minute
)

// ImportCertificate implements LifecycleService.ImportCertificate.
//
// The bundle's T0 (the start of its first subscription year) is the imported certificate's
// not_before, or the time of the import if that is later: a customer who brings a certificate
// issued months ago still gets every paid day from the day the service starts covering it.
func (s *Server) ImportCertificate(ctx context.Context, req *lifecyclev1.ImportCertificateRequest) (*lifecyclev1.ImportCertificateResponse, error) {
	who, c, err := s.callersCertificate(ctx, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	b, err := s.Store.BundleOf(ctx, c.BundleID)
	if err != nil {
		return nil, err
	}
	if c.State != state.PendingApplication {
		return nil, apierr.FailedPrecondition("certificate %s is %s; a certificate can be imported only into a PENDING_APPLICATION instance", c.ID, c.State)
	}
	now := s.Clock.Now()
	imp, err := checkImport(b, req, now)
	if err != nil {
		return nil, err
	}
	info := appInfo{Domains: imp.domains, ValidationMethod: ValidationDNSTXT, KeyAlgorithm: imp.keyAlgorithm}
	if info.Contact, err = checkContact(req.GetContact()); err != nil {
		return nil, err
	}
	if info.Organization, err = checkOrganization(b.ValidationType, req.GetOrganization()); err != nil {
		return nil, err
	}
	a := store.Application{
		ID: ids.New(ids.Application, now), CertificateID: c.ID, BundleID: b.ID, AccountID: c.AccountID,
		Status: store.AppIssued, Actor: state.ActorCustomer, Imported: true,
	}
	var authority ca.Client
	a.CAName, authority = s.CAs.Route(b.ProductID, b.ValidationType) // the CA the renewals go to
	instr, raw, err := instructionsFor(authority, b.ID, imp.domains)
	if err != nil {
		return nil, err
	}
	a.Instructions = raw
	if err := info.toRow(&a); err != nil {
		return nil, err
	}
	a.KeySealed = sql.NullString{String: s.Keys.Seal(imp.keyDER, a.ID), Valid: true}
	leaf := imp.leaf
	iss := store.Issuance{
		ID: ids.New(ids.Issuance, now), CertificateID: c.ID, ApplicationID: a.ID, BundleID: b.ID, AccountID: b.AccountID,
		Serial: leaf.SerialNumber.Text(16), NotBefore: db.Micros(leaf.NotBefore), NotAfter: db.Micros(leaf.NotAfter),
		ChainPEM: imp.chainPEM,
	}
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		cur, err := tx.Certificate(c.ID)
		if err != nil {
			return err
		}
		if cur.State != state.PendingApplication {
			return apierr.FailedPrecondition("certificate %s is now %s; a certificate can be imported only into a PENDING_APPLICATION instance", c.ID, cur.State)
		}
		b, err := tx.Bundle(b.ID)
		if err != nil {
			return err
		}
		if err := tx.InsertApplication(&a); err != nil {
			return err
		}
		if err := tx.InsertIssuance(&iss); err != nil {
			return err
		}
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		t0 := leaf.NotBefore
		if now.After(t0) {
			t0 = now
		}
		if err := setT0(tx, &b, &cur, certs, t0); err != nil {
			return err
		}
		cur.CurrentApplicationID = sql.NullString{String: a.ID, Valid: true}
		b.TemplateApplicationID = sql.NullString{String: a.ID, Valid: true}
		what := fmt.Sprintf("certificate %s imported (issued by %q), valid %s to %s", iss.Serial, leaf.Issuer.String(),
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
		if err := s.placeIssued(tx, &b, &cur, certs, a, iss, state.ActorCustomer, store.EventImported, what, now); err != nil {
			return err
		}
		return tx.SaveBundle(&b, nil)
	})
	if err != nil {
		return nil, err
	}
	s.wakeTicker()
	s.Log.Info("certificate imported", "certificate_id", c.ID, "issuance_id", iss.ID, "serial", iss.Serial, "account", who.AccountID)
	view, err := s.Store.CertificateView(ctx, who.AccountID, c.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.ImportCertificateResponse{Certificate: certificateProto(view), Instructions: dnsRecordsProto(instr)}, nil
}

// imported is a checked import.
type imported struct {
	leaf         *x509.Certificate
	chainPEM     string // the chain re-encoded, leaf first
	domains      []string
	keyDER       []byte // PKCS#8
	keyAlgorithm string // for the renewals' keys
}

// checkImport checks a certificate to import into an instance of bundle b: the chain parses and
// each certificate is signed by the next, the leaf is valid now, its names fit the product, and
// the key is an accepted one and the leaf's.
func checkImport(b store.Bundle, req *lifecyclev1.ImportCertificateRequest, now time.Time) (imported, error) {
	const chainField, keyField = "certificate_chain_pem", "private_key_pem"
	switch {
	case strings.TrimSpace(req.GetCertificateChainPem()) == "":
		return imported{}, apierr.InvalidArgument(chainField, "is required")
	case len(req.GetCertificateChainPem()) > maxImportChain:
		return imported{}, apierr.InvalidArgument(chainField, "is longer than %d bytes", maxImportChain)
	case strings.TrimSpace(req.GetPrivateKeyPem()) == "":
		return imported{}, apierr.InvalidArgument(keyField, "is required")
	case len(req.GetPrivateKeyPem()) > maxImportKey:
		return imported{}, apierr.InvalidArgument(keyField, "is longer than %d bytes", maxImportKey)
	}
	var chain []*x509.Certificate
	var out bytes.Buffer
	rest := []byte(req.GetCertificateChainPem())
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return imported{}, apierr.InvalidArgument(chainField, "holds a %q PEM block; only CERTIFICATE blocks belong in the chain", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return imported{}, apierr.InvalidArgument(chainField, "certificate %d does not parse: %v", len(chain)+1, err)
		}
		chain = append(chain, c)
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})
	}
	if len(chain) == 0 {
		return imported{}, apierr.InvalidArgument(chainField, "holds no PEM CERTIFICATE block")
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return imported{}, apierr.InvalidArgument(chainField, "does not link: certificate %d (%q) is not signed by certificate %d (%q): %v",
				i+1, chain[i].Subject.String(), i+2, chain[i+1].Subject.String(), err)
		}
	}
	leaf := chain[0]
	if !now.Before(leaf.NotAfter) {
		return imported{}, apierr.InvalidArgument(chainField, "the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if leaf.NotBefore.After(now.Add(importSkew)) {
		return imported{}, apierr.InvalidArgument(chainField, "the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if leaf.IsCA {
		return imported{}, apierr.InvalidArgument(chainField, "the first certificate is a CA certificate; put the server's certificate first")
	}
	if len(leaf.IPAddresses) > 0 || len(leaf.EmailAddresses) > 0 || len(leaf.URIs) > 0 {
		return imported{}, apierr.InvalidArgument(chainField, "the certificate names IP addresses, email addresses or URIs; only domain names are accepted")
	}
	names := leaf.DNSNames
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	// A wildcard certificate's wildcard comes first, as in an application.
	ordered := make([]string, 0, len(names))
	for _, n := range names {
		if strings.HasPrefix(n, "*.") {
			ordered = append([]string{n}, ordered...)
		} else {
			ordered = append(ordered, n)
		}
	}
	domains, err := checkDomains(b, ordered)
	if err != nil {
		return imported{}, apierr.InvalidArgument(chainField, "the certificate's names %v do not fit the bundle's %s product: %s",
			names, strings.ToLower(b.DomainType), err)
	}
	key, err := parsePrivateKeyPEM(req.GetPrivateKeyPem())
	if err != nil {
		return imported{}, apierr.InvalidArgument(keyField, "%v", err)
	}
	alg, err := keyAlgorithmOf(key.Public())
	if err != nil {
		return imported{}, apierr.InvalidArgument(keyField, "%v", err)
	}
	leafKey, err := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	if err != nil {
		return imported{}, apierr.InvalidArgument(chainField, "the certificate's public key: %v", err)
	}
	ownKey, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil || !bytes.Equal(leafKey, ownKey) {
		return imported{}, apierr.InvalidArgument(keyField, "does not match the certificate: the key's public key is not the certificate's")
	}
	der, err := marshalKey(key)
	if err != nil {
		return imported{}, apierr.InvalidArgument(keyField, "%v", err)
	}
	return imported{leaf: leaf, chainPEM: out.String(), domains: domains, keyDER: der, keyAlgorithm: alg}, nil
}

// parsePrivateKeyPEM decodes an unencrypted private key: PKCS#8, PKCS#1 (RSA) or SEC 1 (EC).
func parsePrivateKeyPEM(s string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("holds no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("holds more than one PEM block; give the one private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem)")
	default:
		return nil, fmt.Errorf("is a %q PEM block, not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key type %T is not accepted", key)
	}
	return signer, nil
}

// keyAlgorithmOf is the stored key algorithm of a public key, which the renewals' keys follow:
// ECDSA on P-256 or P-384, or RSA of at least 2048 bits (counted as 2048, 3072 or 4096).
func keyAlgorithmOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyECDSAP256, nil
		case elliptic.P384():
			return KeyECDSAP384, nil
		}
		return "", fmt.Errorf("ECDSA key on %s is not accepted (P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch bits := k.N.BitLen(); {
		case bits >= 4096:
			return KeyRSA4096, nil
		case bits >= 3072:
			return KeyRSA3072, nil
		case bits >= 2048:
			return KeyRSA2048, nil
		default:
			return "", fmt.Errorf("RSA key of %d bits is not accepted (at least 2048)", bits)
		}
	}
	return "", fmt.Errorf("key type %T is not accepted (ECDSA P-256/P-384 or RSA ≥ 2048)", pub)
}
