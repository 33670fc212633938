package lifecycle

import (
	"net"
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// idnaProfile turns a name given in Unicode into its A-label form and enforces the rules of host
// names in certificates: letters, digits and hyphens only (no underscores), label and name
// lengths, and the IDNA2008 bidi and joiner rules.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.VerifyDNSLength(true),
	idna.StrictDomainName(true),
	idna.Transitional(false),
)

// normalizeDomain returns name as stored (lower-case A-labels, no trailing dot) and whether it is
// a wildcard, or an InvalidArgument for field.
func normalizeDomain(field, name string) (string, bool, error) {
	raw := strings.TrimSuffix(strings.TrimSpace(name), ".")
	if raw == "" {
		return "", false, apierr.InvalidArgument(field, "is empty")
	}
	if !utf8.ValidString(raw) {
		// idna would map the bad bytes to U+FFFD and encode that: an A-label no name has
		// (FuzzNormalizeDomain found it).
		return "", false, apierr.InvalidArgument(field, "is not valid UTF-8")
	}
	wildcard := false
	if rest, ok := strings.CutPrefix(raw, "*."); ok {
		wildcard, raw = true, rest
	}
	if strings.Contains(raw, "*") {
		return "", false, apierr.InvalidArgument(field, "%s: a wildcard may only be the whole leftmost label (\"*.example.com\")", apierr.Quote(name))
	}
	if net.ParseIP(raw) != nil {
		return "", false, apierr.InvalidArgument(field, "%s is an IP address; only domain names are accepted", apierr.Quote(name))
	}
	ascii, err := idnaProfile.ToASCII(raw)
	if err != nil {
		return "", false, apierr.InvalidArgument(field, "%s is not a valid domain name: %v", apierr.Quote(name), err)
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", false, apierr.InvalidArgument(field, "%s must have at least two labels (a name under a public suffix)", apierr.Quote(name))
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return "", false, apierr.InvalidArgument(field, "%s has an all-numeric top-level label", apierr.Quote(name))
	}
	if wildcard {
		if len(labels) < 2 {
			return "", false, apierr.InvalidArgument(field, "%s: a wildcard needs a registrable domain under it", apierr.Quote(name))
		}
		ascii = "*." + ascii
	}
	if len(ascii) > 253 {
		return "", false, apierr.InvalidArgument(field, "%s is longer than 253 characters", apierr.Quote(name))
	}
	return ascii, wildcard, nil
}

// checkDomains normalizes an application's names and checks them against the bundle's product:
// SINGLE takes one name and no wildcard; WILDCARD takes one wildcard, plus optionally its bare
// domain (which a wildcard does not cover, and which customers nearly always want too); MULTI
// takes up to the purchased domain_count names, no wildcards.
func checkDomains(b store.Bundle, names []string) ([]string, error) {
	if len(names) == 0 {
		return nil, apierr.InvalidArgument("domains", "at least one domain is required")
	}
	out := make([]string, 0, len(names))
	seen := map[string]bool{}
	wildcards := 0
	for i, n := range names {
		d, wild, err := normalizeDomain(fieldIndex("domains", i), n)
		if err != nil {
			return nil, err
		}
		if err := underPublicSuffix(fieldIndex("domains", i), d); err != nil {
			return nil, err
		}
		if seen[d] {
			return nil, apierr.InvalidArgument(fieldIndex("domains", i), "%q is listed twice", d)
		}
		seen[d] = true
		if wild {
			wildcards++
		}
		out = append(out, d)
	}
	if b.ValidationType == "EV" && wildcards > 0 {
		return nil, apierr.InvalidArgument("domains", "an EV certificate cannot hold a wildcard (CA/Browser Forum EV Guidelines)")
	}
	switch b.DomainType {
	case "SINGLE":
		if len(out) != 1 {
			return nil, apierr.InvalidArgument("domains", "a single-domain certificate takes exactly 1 domain, got %d", len(out))
		}
		if wildcards > 0 {
			return nil, apierr.InvalidArgument("domains[0]", "a single-domain certificate cannot hold a wildcard; buy a wildcard product")
		}
	case "WILDCARD":
		if !strings.HasPrefix(out[0], "*.") {
			return nil, apierr.InvalidArgument("domains[0]", "a wildcard certificate's first domain must be a wildcard (\"*.example.com\"), got %q", out[0])
		}
		if len(out) > 2 || (len(out) == 2 && out[1] != strings.TrimPrefix(out[0], "*.")) {
			return nil, apierr.InvalidArgument("domains", "a wildcard certificate takes the wildcard and, optionally, its bare domain %q", strings.TrimPrefix(out[0], "*."))
		}
	case "MULTI":
		if len(out) > b.DomainCount {
			return nil, apierr.InvalidArgument("domains", "the bundle covers at most %d domains, got %d", b.DomainCount, len(out))
		}
		if wildcards > 0 {
			return nil, apierr.InvalidArgument("domains", "a multi-domain certificate cannot hold wildcards")
		}
	}
	return out, nil
}

// underPublicSuffix refuses a certificate name that is a public suffix itself ("co.uk"), or a
// wildcard directly under one ("*.co.uk"), by the Public Suffix List (golang.org/x/net/publicsuffix,
// both its ICANN and its private section), as CAs do (CA/Browser Forum Baseline Requirements
// 3.2.2.6): nobody holds such a name for everyone under it. A name under a suffix the list does not
// know ("shop.example.test") takes its last label as the suffix, the list's default rule.
func underPublicSuffix(field, name string) error {
	base, wildcard := strings.CutPrefix(name, "*.")
	suffix, _ := publicsuffix.PublicSuffix(base)
	if suffix != base {
		return nil
	}
	if wildcard {
		return apierr.InvalidArgument(field, "%q is a wildcard directly under the public suffix %q (Public Suffix List); a certificate can be for names under a domain registered there, such as \"*.example.%s\"", name, base, base)
	}
	return apierr.InvalidArgument(field, "%q is a public suffix (Public Suffix List), which no one holds for everyone under it; apply for a name under it, such as \"example.%s\"", name, base)
}

func fieldIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}

// checkContact validates the contact; the email is required.
func checkContact(c *lifecyclev1.Contact) (ca.Contact, error) {
	if c.GetEmail() == "" {
		return ca.Contact{}, apierr.InvalidArgument("contact.email", "is required")
	}
	addr, err := mail.ParseAddress(c.GetEmail())
	if err != nil || addr.Address != c.GetEmail() {
		return ca.Contact{}, apierr.InvalidArgument("contact.email", "%s is not an email address", apierr.Quote(c.GetEmail()))
	}
	if len(c.GetName()) > 200 || len(c.GetPhone()) > 50 {
		return ca.Contact{}, apierr.InvalidArgument("contact", "name or phone is too long")
	}
	for _, f := range []struct{ name, v string }{{"contact.name", c.GetName()}, {"contact.phone", c.GetPhone()}} {
		if err := apierr.CheckText(f.name, f.v); err != nil {
			return ca.Contact{}, err
		}
	}
	return ca.Contact{Name: c.GetName(), Email: c.GetEmail(), Phone: c.GetPhone()}, nil
}

// checkOrganization validates the organization against the validation type: required with its
// fields for OV and EV, not allowed for DV (a DV certificate names no organization).
func checkOrganization(validation string, o *lifecyclev1.Organization) (*ca.Organization, error) {
	if validation == "DV" {
		if o != nil && (o.GetLegalName() != "" || o.GetCountry() != "" || o.GetLocality() != "" || o.GetRegistrationNumber() != "") {
			return nil, apierr.InvalidArgument("organization", "is not used for a DV certificate; leave it empty")
		}
		return nil, nil
	}
	if o == nil {
		return nil, apierr.InvalidArgument("organization", "is required for a %s certificate", validation)
	}
	for _, f := range []struct{ name, v string }{
		{"organization.legal_name", o.GetLegalName()},
		{"organization.country", o.GetCountry()},
		{"organization.locality", o.GetLocality()},
		{"organization.registration_number", o.GetRegistrationNumber()},
	} {
		if strings.TrimSpace(f.v) == "" {
			return nil, apierr.InvalidArgument(f.name, "is required for a %s certificate", validation)
		}
		if utf8.RuneCountInString(f.v) > 200 {
			return nil, apierr.InvalidArgument(f.name, "is longer than 200 characters")
		}
		if err := apierr.CheckText(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if err := apierr.CheckText("organization.state_or_province", o.GetStateOrProvince()); err != nil || utf8.RuneCountInString(o.GetStateOrProvince()) > 200 {
		if err == nil {
			err = apierr.InvalidArgument("organization.state_or_province", "is longer than 200 characters")
		}
		return nil, err
	}
	if c := o.GetCountry(); len(c) != 2 || strings.ToUpper(c) != c || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return nil, apierr.InvalidArgument("organization.country", "must be an ISO 3166-1 alpha-2 code such as \"DE\", got %s", apierr.Quote(c))
	}
	return &ca.Organization{
		LegalName:          o.GetLegalName(),
		Country:            o.GetCountry(),
		StateOrProvince:    o.GetStateOrProvince(),
		Locality:           o.GetLocality(),
		RegistrationNumber: o.GetRegistrationNumber(),
	}, nil
}

var keyAlgorithmFromProto = map[lifecyclev1.KeyAlgorithm]string{
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED: KeyECDSAP256,
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P256:  KeyECDSAP256,
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P384:  KeyECDSAP384,
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048:    KeyRSA2048,
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_3072:    KeyRSA3072,
	lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_4096:    KeyRSA4096,
}
