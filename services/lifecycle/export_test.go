package lifecycle_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// export returns the owner's export of a certificate and fails the test if it is refused.
func (e *env) export(certID string) *lifecyclev1.ExportCertificateResponse {
	e.t.Helper()
	resp, err := e.a.ExportCertificate(e.ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: certID})
	if err != nil {
		e.t.Fatalf("ExportCertificate: %v", err)
	}
	return resp
}

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// TestKeyAlgorithms: a system-generated key is of the algorithm applied for (ECDSA P-256 when
// none is named), the certificate carries it, and the export holds its PKCS#8 private key, which
// signs what the certificate's public key verifies.
func TestKeyAlgorithms(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ecdsaOn := func(curve elliptic.Curve) func(crypto.PublicKey) bool {
		return func(pub crypto.PublicKey) bool { k, ok := pub.(*ecdsa.PublicKey); return ok && k.Curve == curve }
	}
	rsaOf := func(bits int) func(crypto.PublicKey) bool {
		return func(pub crypto.PublicKey) bool { k, ok := pub.(*rsa.PublicKey); return ok && k.N.BitLen() == bits }
	}
	for i, tc := range []struct {
		name string
		alg  lifecyclev1.KeyAlgorithm
		want lifecyclev1.KeyAlgorithm
		is   func(crypto.PublicKey) bool
		slow bool
	}{
		{"unspecified is ECDSA P-256", lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P256, ecdsaOn(elliptic.P256()), false},
		{"ECDSA P-256", lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P256, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P256, ecdsaOn(elliptic.P256()), false},
		{"ECDSA P-384", lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P384, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P384, ecdsaOn(elliptic.P384()), false},
		{"RSA 2048", lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048, rsaOf(2048), false},
		{"RSA 3072", lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_3072, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_3072, rsaOf(3072), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.slow && testing.Short() {
				t.Skip("generating an RSA 3072 key is slow")
			}
			e := e.in(t)
			b := e.buy("dv-single", dv, single, 1, 2, true)
			req := application(b.GetCertificates()[0].GetCertificateId(), fmt.Sprintf("key%d.example.com", i))
			req.KeyAlgorithm = tc.alg
			c := e.issue(req)
			if app := c.GetCurrentApplication(); app.GetKeyAlgorithm() != tc.want || app.GetCustomerKey() {
				t.Errorf("application key_algorithm %s, customer_key %v; want %s, false", app.GetKeyAlgorithm(), app.GetCustomerKey(), tc.want)
			}
			leaf := parseLeaf(t, c.GetCurrentIssuance().GetCertificateChainPem())
			if !tc.is(leaf.PublicKey) {
				t.Errorf("certificate key is %T, want %s", leaf.PublicKey, tc.name)
			}

			exp := e.export(c.GetCertificateId())
			if !proto.Equal(exp.GetIssuance(), c.GetCurrentIssuance()) {
				t.Errorf("exported issuance %v, want the current one %v", exp.GetIssuance(), c.GetCurrentIssuance())
			}
			block, _ := pem.Decode([]byte(exp.GetPrivateKeyPem()))
			if block == nil || block.Type != "PRIVATE KEY" {
				t.Fatalf("private_key_pem %q is not a PEM PRIVATE KEY (PKCS#8)", exp.GetPrivateKeyPem())
			}
			parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatalf("private key: %v", err)
			}
			key := parsed.(crypto.Signer)
			if !samePublicKey(key.Public(), leaf.PublicKey) {
				t.Fatal("the exported private key is not the certificate's")
			}
			digest := sha256.Sum256([]byte("certhosting"))
			sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			sigAlg := x509.ECDSAWithSHA256
			if _, ok := leaf.PublicKey.(*rsa.PublicKey); ok {
				sigAlg = x509.SHA256WithRSA
			}
			if err := leaf.CheckSignature(sigAlg, []byte("certhosting"), sig); err != nil {
				t.Errorf("a signature of the exported key does not verify with the certificate: %v", err)
			}
		})
	}
}

// TestExportCustomerKey: with the customer's own CSR the certificate of a non-hosted bundle is
// ISSUED for the customer's key, and the export holds the chain but no private key (the service
// never had it).
func TestExportCustomerKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := newP256(t)
	b := e.buy("dv-multi", dv, multi, 2, 1, false)
	req := application(b.GetCertificates()[0].GetCertificateId(), "shop.example.com", "www.example.com")
	req.CsrPem = csrFor(t, key, "shop.example.com", "www.example.com")
	c := e.issue(req)
	if c.GetState() != stIssued || c.GetRenewTime() != nil {
		t.Errorf("instance is %s with renew_time %v, want ISSUED with no renewal planned", c.GetState(), c.GetRenewTime())
	}
	if app := c.GetCurrentApplication(); !app.GetCustomerKey() || app.GetKeyAlgorithm() != lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED {
		t.Errorf("application customer_key %v, key_algorithm %s; want true, unspecified", app.GetCustomerKey(), app.GetKeyAlgorithm())
	}
	exp := e.export(c.GetCertificateId())
	if exp.GetPrivateKeyPem() != "" {
		t.Error("the export of a certificate for the customer's CSR holds a private key")
	}
	if !proto.Equal(exp.GetIssuance(), c.GetCurrentIssuance()) {
		t.Errorf("exported issuance %v, want the current one %v", exp.GetIssuance(), c.GetCurrentIssuance())
	}
	leaf := parseLeaf(t, exp.GetIssuance().GetCertificateChainPem())
	if !samePublicKey(key.Public(), leaf.PublicKey) {
		t.Error("the certificate is not for the customer's key")
	}
	verifyChain(t, e.authority.Roots(), &issued{leaf: leaf, chainPEM: exp.GetIssuance().GetCertificateChainPem(), notBefore: leaf.NotBefore})
}

// TestExportRefused: only the owning account's customer keys export, and only a certificate
// that has been issued.
func TestExportRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hosted, _ := e.hosting()
	hostedCert := hosted.GetCertificates()[0].GetCertificateId()
	validating, _ := e.hostedDV()
	tests := []struct {
		name   string
		client lifecyclev1.LifecycleServiceClient
		cert   string
		code   codes.Code
	}{
		{"NOT_ACTIVATED", e.a, hosted.GetCertificates()[1].GetCertificateId(), codes.FailedPrecondition},
		{"VALIDATING", e.a, validating.GetCertificates()[0].GetCertificateId(), codes.FailedPrecondition},
		{"another account", e.b, hostedCert, codes.NotFound},
		{"support engineer", lifecyclev1.NewLifecycleServiceClient(e.supportConn), hostedCert, codes.PermissionDenied},
		{"order service", e.svc, hostedCert, codes.PermissionDenied},
		{"malformed certificate_id", e.a, "crt_", codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.ExportCertificate(e.ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: tc.cert})
			if status.Code(err) != tc.code {
				t.Errorf("ExportCertificate = %v, %v; want %s", resp, err, tc.code)
			}
		})
	}
	if e.export(hostedCert).GetPrivateKeyPem() == "" {
		t.Error("the owner's export has no private key")
	}
}
