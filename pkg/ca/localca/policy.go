package localca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
)

// RecordLabel is the label in front of a base domain that names its validation record:
// _certhosting-validation.shop.example.com for shop.example.com and *.shop.example.com.
const RecordLabel = "_certhosting-validation"

// maxDomains is the most names one certificate may hold (the catalog's multi-domain maximum).
const maxDomains = 100

// checkRequest is the policy a request must meet to be considered at all, a pure function of the
// request and the time. It returns the domains normalized (lower case, in the request's order) and
// the problem, "" when there is none. A problem is a verdict (Rejected, ReasonPolicy), never an
// error: submitting the same request again would meet the same policy.
func checkRequest(req ca.Request, now time.Time) (domains []string, problem string) {
	switch req.Validation {
	case "DV", "OV", "EV":
	default:
		return nil, fmt.Sprintf("validation %q is not one of DV, OV, EV", req.Validation)
	}
	if len(req.Domains) == 0 {
		return nil, "no domains requested"
	}
	if len(req.Domains) > maxDomains {
		return nil, fmt.Sprintf("%d domains requested; at most %d per certificate", len(req.Domains), maxDomains)
	}
	for _, d := range req.Domains {
		d = strings.ToLower(d)
		if p := checkDomain(d); p != "" {
			return nil, fmt.Sprintf("domain %q %s", d, p)
		}
		if slices.Contains(domains, d) {
			return nil, fmt.Sprintf("domain %q is requested twice", d)
		}
		if req.Validation == "EV" && strings.HasPrefix(d, "*.") {
			return nil, fmt.Sprintf("domain %q: EV certificates cannot hold wildcard names", d)
		}
		domains = append(domains, d)
	}
	if !req.NotAfter.IsZero() && !req.NotAfter.After(now) {
		return nil, fmt.Sprintf("requested not_after %s is not in the future", req.NotAfter.UTC().Format(time.RFC3339))
	}
	if p := checkCSR(req.CSR, domains); p != "" {
		return nil, p
	}
	return domains, ""
}

// checkDomain returns what is wrong with a lower-case domain name, or "". Names are A-labels of
// letters, digits and hyphens, with at least two labels; a wildcard is only "*." in front.
func checkDomain(d string) string {
	if len(d) > 253 {
		return "is longer than 253 characters"
	}
	rest := strings.TrimPrefix(d, "*.")
	if net.ParseIP(rest) != nil {
		return "is an IP address; only domain names are certified"
	}
	labels := strings.Split(rest, ".")
	if len(labels) < 2 {
		return "needs at least two labels"
	}
	for _, l := range labels {
		switch {
		case l == "":
			return "has an empty label"
		case l == "*":
			return "has a wildcard that is not the whole leftmost label"
		case len(l) > 63:
			return "has a label longer than 63 characters"
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Sprintf("has the label %q starting or ending with a hyphen", l)
		}
		for _, c := range l {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return fmt.Sprintf("has the character %q; names are A-labels of letters, digits and hyphens", c)
			}
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "ends in a numeric label"
	}
	return ""
}

// checkCSR checks that der is a well-signed CSR whose names are exactly domains and whose key is
// acceptable.
func checkCSR(der []byte, domains []string) string {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return fmt.Sprintf("CSR does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Sprintf("CSR signature does not verify: %v", err)
	}
	if len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return "CSR holds IP, email or URI names; only DNS names are certified"
	}
	// The CSR's names are its DNS names and its common name, as a set: a CSR made for one name
	// often carries it in the common name only.
	var names []string
	for _, n := range append(slices.Clone(csr.DNSNames), csr.Subject.CommonName) {
		if n = strings.ToLower(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	var missing, extra []string
	for _, d := range domains {
		if !slices.Contains(names, d) {
			missing = append(missing, d)
		}
	}
	for _, n := range names {
		if !slices.Contains(domains, n) {
			extra = append(extra, n)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "missing "+strings.Join(missing, ", "))
		}
		if len(extra) > 0 {
			parts = append(parts, "not requested "+strings.Join(extra, ", "))
		}
		return "CSR names do not match the requested domains: " + strings.Join(parts, "; ")
	}
	return checkKey(csr.PublicKey)
}

// checkKey accepts what public CAs accept: ECDSA on P-256 or P-384, RSA of 2048 to 8192 bits.
func checkKey(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return ""
		}
		return fmt.Sprintf("ECDSA key on %s; want P-256 or P-384", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Sprintf("RSA key of %d bits; want 2048 to 8192", bits)
		}
		return ""
	}
	return fmt.Sprintf("key type %T is not accepted; want ECDSA P-256 or P-384, or RSA of 2048 bits or more", pub)
}

// OrganizationRule is the local CA's stand-in for vetting an organization (OV and EV): structural
// checks every real CA would make, plus a list of legal names to refuse, so a test or a demo can
// make the organization check fail on purpose.
type OrganizationRule struct {
	// RejectLegalName, if set, refuses every organization whose legal name it matches.
	RejectLegalName *regexp.Regexp
}

var countryCode = regexp.MustCompile(`^[A-Z]{2}$`)

// Check returns what is wrong with o, or "": the legal name, locality and registration number
// must be given, the country must be an ISO 3166-1 alpha-2 code (two upper-case letters), and the
// legal name must not be one the rule rejects.
func (r OrganizationRule) Check(o *ca.Organization) string {
	switch {
	case o == nil:
		return "organization details are missing"
	case strings.TrimSpace(o.LegalName) == "":
		return "organization legal name is empty"
	case !countryCode.MatchString(o.Country):
		return fmt.Sprintf("organization country %q is not an ISO 3166-1 alpha-2 code (two upper-case letters)", o.Country)
	case strings.TrimSpace(o.Locality) == "":
		return "organization locality is empty"
	case strings.TrimSpace(o.RegistrationNumber) == "":
		return "organization registration number is empty"
	case r.RejectLegalName != nil && r.RejectLegalName.MatchString(o.LegalName):
		return fmt.Sprintf("organization %q could not be verified against the registry", o.LegalName)
	}
	return ""
}

// instructions are the validation records for domains: one TXT record per distinct base domain
// (a wildcard's base is the name without "*."), named RecordLabel.<base>.
//
// The value is derived, not random: base64url(HMAC-SHA256(secret, binding "\n" base)), where
// secret is the CA's own and binding identifies the subscription. Every application of a bundle
// therefore asks for the same record, so a record published once for the first certificate
// verifies every renewal with no customer action, as the CA/Browser Forum's persistent DNS
// validation method does with an account binding. Another bundle for the same domain gets another
// value, so one customer's record never validates another's application, and nobody without
// the secret can compute a value.
func instructions(secret []byte, binding string, domains []string) []ca.DNSRecord {
	var out []ca.DNSRecord
	for _, d := range domains {
		base := strings.TrimPrefix(d, "*.")
		name := RecordLabel + "." + base
		if slices.ContainsFunc(out, func(r ca.DNSRecord) bool { return r.Name == name }) {
			continue
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(binding + "\n" + base))
		out = append(out, ca.DNSRecord{Name: name, Type: "TXT", Value: base64.RawURLEncoding.EncodeToString(mac.Sum(nil))})
	}
	return out
}
