package lifecycle_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

var (
	wildcard = lifecyclev1.DomainType_DOMAIN_TYPE_WILDCARD
	contact  = &lifecyclev1.Contact{Name: "Ops", Email: "ops@example.com"}
	org      = &lifecyclev1.Organization{LegalName: "Example GmbH", Country: "DE", Locality: "Berlin", RegistrationNumber: "HRB 12345"}
)

// application is a valid application of certID for domains, by a DV customer.
func application(certID string, domains ...string) *lifecyclev1.SubmitApplicationRequest {
	return &lifecyclev1.SubmitApplicationRequest{CertificateId: certID, Domains: domains, Contact: contact}
}

// csrFor is a PEM certificate signing request for names (the first is the common name), signed
// with key: what a customer bringing their own key submits.
func csrFor(t *testing.T, key crypto.Signer, names ...string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func newP256(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSubmitApplicationInvalid: every malformed application is InvalidArgument naming the field
// at fault, and nothing is written or sent to the CA; the same applications without the fault
// are accepted.
func TestSubmitApplicationInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// One bundle per product the cases need, and the valid application each case changes.
	bundles := map[string]*lifecyclev1.Bundle{
		"dv-single hosted": e.buy("dv-single", dv, single, 1, 3, true),
		"dv-single":        e.buy("dv-single", dv, single, 1, 1, false),
		"dv-wildcard":      e.buy("dv-wildcard", dv, wildcard, 2, 1, false),
		"dv-multi":         e.buy("dv-multi", dv, multi, 2, 1, false),
		"ov-multi":         e.buy("ov-multi", ov, multi, 2, 1, false),
		"ev-single":        e.buy("ev-single", lifecyclev1.ValidationType_VALIDATION_TYPE_EV, single, 1, 1, false),
	}
	valid := func(product string) *lifecyclev1.SubmitApplicationRequest {
		r := application(bundles[product].GetCertificates()[0].GetCertificateId(), "shop.example.com")
		switch product {
		case "dv-wildcard":
			r.Domains = []string{"*.example.com", "example.com"}
		case "dv-multi":
			r.Domains = []string{"shop.example.com", "www.example.com"}
		case "ov-multi":
			r.Domains = []string{"shop.example.com", "www.example.com"}
			r.Organization = proto.Clone(org).(*lifecyclev1.Organization)
		case "ev-single":
			r.Organization = proto.Clone(org).(*lifecyclev1.Organization)
		}
		return r
	}
	customerKey := newP256(t)
	weakKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	goodCSR := csrFor(t, customerKey, "shop.example.com")

	tests := []struct {
		name    string
		product string
		change  func(r *lifecyclev1.SubmitApplicationRequest)
		field   string
	}{
		{"no domains", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = nil }, "domains"},
		{"empty domain", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = "" }, "domains[1]"},
		{"blank domain", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{" . "} }, "domains[0]"},
		{"two domains on single", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{"shop.example.com", "www.example.com"}
		}, "domains"},
		{"wildcard on single", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"*.example.com"} }, "domains[0]"},
		{"wildcard product, plain first domain", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{"example.com", "*.example.com"}
		}, "domains[0]"},
		{"wildcard product, no wildcard", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"shop.example.com"} }, "domains[0]"},
		{"wildcard product, third name", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = append(r.Domains, "www.example.com")
		}, "domains"},
		{"wildcard product, another base domain", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = "example.org" }, "domains"},
		{"wildcard product, a subdomain as second name", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = "www.example.com" }, "domains"},
		{"wildcard not the whole leftmost label", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[0] = "*shop.example.com" }, "domains[0]"},
		{"wildcard inside the name", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[0] = "www.*.example.com" }, "domains[0]"},
		{"wildcard over a public suffix", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"*.com"} }, "domains[0]"},
		{"more domains than domain_count", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = append(r.Domains, "mail.example.com")
		}, "domains"},
		{"wildcard on multi", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = "*.example.com" }, "domains"},
		{"duplicate domains", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = r.Domains[0] }, "domains[1]"},
		{"duplicate after normalization", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{"Shop.Example.com", "shop.example.com."}
		}, "domains[1]"},
		{"duplicate as U-label and A-label", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{"bücher.example", "xn--bcher-kva.example"}
		}, "domains[1]"},
		{"IPv4 address", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"192.0.2.1"} }, "domains[0]"},
		{"IPv6 address", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"2001:db8::1"} }, "domains[0]"},
		{"one label", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"localhost"} }, "domains[0]"},
		{"all-numeric top-level label", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"shop.example.123"} }, "domains[0]"},
		{"a public suffix", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"co.uk"} }, "domains[0]"},
		{"a public suffix in upper case", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"CO.UK."} }, "domains[0]"},
		{"a private public suffix", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"github.io"} }, "domains[0]"},
		{"a wildcard directly under a public suffix", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"*.co.uk"} }, "domains[0]"},
		{"a wildcard directly under a private suffix", "dv-wildcard", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"*.github.io"} }, "domains[0]"},
		{"a public suffix in a multi-domain list", "dv-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains[1] = "com.au" }, "domains[1]"},
		{"underscore", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"shop_1.example.com"} }, "domains[0]"},
		{"empty label", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"shop..example.com"} }, "domains[0]"},
		{"label starting with a hyphen", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Domains = []string{"-shop.example.com"} }, "domains[0]"},
		{"label of 64 characters", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{strings.Repeat("a", 64) + ".example.com"}
		}, "domains[0]"},
		{"name of 254 characters", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Domains = []string{strings.Repeat(strings.Repeat("a", 62)+".", 4) + "example.com"}
		}, "domains[0]"},
		{"no contact", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Contact = nil }, "contact.email"},
		{"no contact email", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Contact = &lifecyclev1.Contact{Name: "Ops"} }, "contact.email"},
		{"malformed contact email", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Contact = &lifecyclev1.Contact{Email: "ops.example.com"}
		}, "contact.email"},
		{"contact email with a display name", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Contact = &lifecyclev1.Contact{Email: "Ops <ops@example.com>"}
		}, "contact.email"},
		{"NUL in the contact name", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Contact = &lifecyclev1.Contact{Name: "Ops\x00Team", Email: "ops@example.com"}
		}, "contact.name"},
		{"newline in the contact phone", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Contact = &lifecyclev1.Contact{Phone: "+49 30\n1234", Email: "ops@example.com"}
		}, "contact.phone"},
		{"escape in the legal name", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Organization = &lifecyclev1.Organization{LegalName: "Example\x1b[2J GmbH", Country: "DE", Locality: "Berlin", RegistrationNumber: "HRB 1"}
		}, "organization.legal_name"},
		{"OV without organization", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization = nil }, "organization"},
		{"EV without organization", "ev-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization = nil }, "organization"},
		{"EV with an empty organization", "ev-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Organization = &lifecyclev1.Organization{}
		}, "organization.legal_name"},
		{"OV without legal name", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.LegalName = " " }, "organization.legal_name"},
		{"OV without country", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.Country = "" }, "organization.country"},
		{"OV without locality", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.Locality = "" }, "organization.locality"},
		{"OV without registration number", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.RegistrationNumber = "" }, "organization.registration_number"},
		{"legal name of 201 characters", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.Organization.LegalName = strings.Repeat("a", 201)
		}, "organization.legal_name"},
		{"country in lower case", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.Country = "de" }, "organization.country"},
		{"country of three letters", "ov-multi", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization.Country = "DEU" }, "organization.country"},
		{"organization on DV", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.Organization = org }, "organization"},
		{"unknown validation method", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.ValidationMethod = 99 }, "validation_method"},
		{"unknown key algorithm", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.KeyAlgorithm = 99 }, "key_algorithm"},
		{"CSR on a hosted bundle", "dv-single hosted", func(r *lifecyclev1.SubmitApplicationRequest) { r.CsrPem = goodCSR }, "csr_pem"},
		{"CSR that is not PEM", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) { r.CsrPem = "not a CSR" }, "csr_pem"},
		{"CSR in a PEM block of another type", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem = strings.ReplaceAll(goodCSR, "CERTIFICATE REQUEST", "CERTIFICATE")
		}, "csr_pem"},
		{"CSR that does not parse", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte("garbage")}))
		}, "csr_pem"},
		{"CSR for other names", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem = csrFor(t, customerKey, "other.example.com")
		}, "csr_pem"},
		{"CSR with an extra name", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem = csrFor(t, customerKey, "shop.example.com", "www.example.com")
		}, "csr_pem"},
		{"CSR with an RSA 1024 key", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem = csrFor(t, weakKey, "shop.example.com")
		}, "csr_pem"},
		{"key algorithm with a CSR", "dv-single", func(r *lifecyclev1.SubmitApplicationRequest) {
			r.CsrPem, r.KeyAlgorithm = goodCSR, lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048
		}, "key_algorithm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := valid(tc.product)
			tc.change(req)
			_, err := e.a.SubmitApplication(e.ctx, req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}

	// Nothing was written, and the CA heard of none of them.
	if n := e.ca.calls.Load(); n != 0 {
		t.Errorf("%d calls to the CA for invalid applications, want none", n)
	}
	for product, b := range bundles {
		c := e.certificate(b.GetCertificates()[0].GetCertificateId())
		if c.GetState() != pending || c.GetCurrentApplication() != nil {
			t.Errorf("%s: instance is %s with application %v, want PENDING_APPLICATION and none", product, c.GetState(), c.GetCurrentApplication())
		}
		if h := e.history(c.GetCertificateId()); len(h) != 1 {
			t.Errorf("%s: %d history events after invalid applications, want only the creation: %v", product, len(h), h)
		}
	}
	// The same applications without the fault are accepted (with the customer's own key on the
	// non-hosted single-domain bundle, and a legal name of 200 characters in 400 bytes).
	for product := range bundles {
		req := valid(product)
		switch product {
		case "dv-single":
			req.CsrPem = goodCSR
		case "ov-multi":
			req.Organization.LegalName = strings.Repeat("ü", 200)
		}
		if got := e.submit(req).GetCertificate().GetState(); got != stValidating {
			t.Errorf("%s: valid application leaves the instance %s, want VALIDATING", product, got)
		}
	}
}

// TestSubmitApplicationIDN: a name given in Unicode, in any case, is stored, shown, validated
// and certified as its A-label.
func TestSubmitApplicationIDN(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const aLabel = "xn--bcher-kva.example"
	for _, name := range []string{"bücher.example", "BÜCHER.example", "Bücher.Example.", aLabel} {
		t.Run(name, func(t *testing.T) {
			e := e.in(t)
			b := e.buy("dv-single", dv, single, 1, 1, false)
			cert := b.GetCertificates()[0].GetCertificateId()
			sub := e.submit(application(cert, name))
			if got := sub.GetCertificate().GetCurrentApplication().GetDomains(); !slices.Equal(got, []string{aLabel}) {
				t.Errorf("application domains = %v, want [%s]", got, aLabel)
			}
			if recs := sub.GetInstructions(); len(recs) != 1 || recs[0].GetName() != "_certhosting-validation."+aLabel {
				t.Errorf("instructions = %v, want one record at _certhosting-validation.%s", recs, aLabel)
			}
			e.publish(sub.GetInstructions())
			e.tick()
			c := e.certificate(cert)
			if c.GetState() != stIssued {
				t.Fatalf("instance is %s, want ISSUED", c.GetState())
			}
			leaf := parseLeaf(t, c.GetCurrentIssuance().GetCertificateChainPem())
			if !slices.Equal(leaf.DNSNames, []string{aLabel}) || leaf.Subject.CommonName != aLabel {
				t.Errorf("certificate names %v (common name %q), want the A-label %s", leaf.DNSNames, leaf.Subject.CommonName, aLabel)
			}
		})
	}
}

// TestSubmitApplicationState: an application is taken only for an instance of the caller's that
// is waiting for one; anything else changes nothing.
func TestSubmitApplicationState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hosted, _ := e.hosting()
	validating, _ := e.hostedDV()
	staff := lifecyclev1.NewLifecycleServiceClient(e.supportConn)
	tests := []struct {
		name    string
		client  lifecyclev1.LifecycleServiceClient
		cert    string
		code    codes.Code
		mention string // in the message: the current state, or the field
	}{
		{"NOT_ACTIVATED", e.a, hosted.GetCertificates()[1].GetCertificateId(), codes.FailedPrecondition, "NOT_ACTIVATED"},
		{"VALIDATING (an application in flight)", e.a, validating.GetCertificates()[0].GetCertificateId(), codes.FailedPrecondition, "VALIDATING"},
		{"HOSTED", e.a, hosted.GetCertificates()[0].GetCertificateId(), codes.FailedPrecondition, "HOSTED"},
		{"another account's certificate", e.b, validating.GetCertificates()[0].GetCertificateId(), codes.NotFound, ""},
		{"support engineer", staff, validating.GetCertificates()[0].GetCertificateId(), codes.PermissionDenied, ""},
		{"malformed certificate_id", e.a, "crt_123", codes.InvalidArgument, "certificate_id"},
		{"bundle id as certificate_id", e.a, hosted.GetBundleId(), codes.InvalidArgument, "certificate_id"},
		{"no certificate_id", e.a, "", codes.InvalidArgument, "certificate_id"},
	}
	histories := map[string]int{}
	for _, b := range []*lifecyclev1.Bundle{hosted, validating} {
		for _, c := range b.GetCertificates() {
			histories[c.GetCertificateId()] = len(e.history(c.GetCertificateId()))
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.SubmitApplication(e.ctx, application(tc.cert, "shop.example.com"))
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.mention) {
				t.Errorf("SubmitApplication = %v, want %s mentioning %q", err, tc.code, tc.mention)
			}
		})
	}
	for cert, n := range histories {
		if got := len(e.history(cert)); got != n {
			t.Errorf("certificate %s has %d history events after refused applications, want %d", cert, got, n)
		}
	}
}

// TestSubmitApplicationConcurrent: of applications racing for one instance, exactly one is
// taken; the others are FailedPrecondition and leave no trace.
func TestSubmitApplicationConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 1, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	apps := make([]string, n)
	for i := range n {
		wg.Go(func() {
			resp, err := e.a.SubmitApplication(e.ctx, application(cert, "shop.example.com"))
			errs[i], apps[i] = err, resp.GetCertificate().GetCurrentApplication().GetApplicationId()
		})
	}
	wg.Wait()
	var won []string
	for i, err := range errs {
		switch status.Code(err) {
		case codes.OK:
			won = append(won, apps[i])
		case codes.FailedPrecondition:
		default:
			t.Errorf("application %d: %v, want OK or FailedPrecondition", i, err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d applications taken, want exactly 1 (errors %v)", len(won), errs)
	}
	if got := e.certificate(cert).GetCurrentApplication().GetApplicationId(); got != won[0] {
		t.Errorf("current application %s, want the one taken, %s", got, won[0])
	}
	if n := countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_APPLICATION_SUBMITTED); n != 1 {
		t.Errorf("%d APPLICATION_SUBMITTED events, want 1", n)
	}
}

// TestNamesUnderPublicSuffixes: names under a public suffix (one listed, one private, one the list
// does not know) are accepted; the refusals of the suffixes themselves are in
// TestSubmitApplicationInvalid.
func TestNamesUnderPublicSuffixes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		product string
		dt      lifecyclev1.DomainType
		names   []string
	}{
		{"dv-single", single, []string{"shop.co.uk"}},
		{"dv-single", single, []string{"user.github.io"}},
		{"dv-wildcard", wildcard, []string{"*.example.co.uk", "example.co.uk"}},
		{"dv-wildcard", wildcard, []string{"*.user.github.io"}},
		{"dv-single", single, []string{"shop.example.test"}},
	} {
		b := e.buy(tc.product, dv, tc.dt, 1, 1, false)
		if _, err := e.a.SubmitApplication(e.ctx, application(b.GetCertificates()[0].GetCertificateId(), tc.names...)); err != nil {
			t.Errorf("SubmitApplication(%v): %v", tc.names, err)
		}
	}
}
