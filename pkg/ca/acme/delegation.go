package acme

import (
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"strings"

	"github.com/certhosting/certhosting/pkg/ca"
)

// ChallengeLabel is the label in front of a domain that names its DNS-01 record (RFC 8555 §8.4).
const ChallengeLabel = "_acme-challenge"

// labelEncoding writes labels in lower-case base32 without padding: letters and digits only, so
// every label is a valid host name label.
var labelEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Delegation is the CNAME the customer publishes once for domain, in an application bound to
// binding, with the delegation zone zone:
//
//	_acme-challenge.<base domain>  CNAME  <label>.<zone>
//
// where the base domain is domain without a leading "*." (a wildcard is validated at its base
// name, RFC 8555 §8.4) and label is the first 160 bits of SHA-256(binding "\n" base domain) in
// lower-case base32 (32 characters).
//
// Why it is shaped like this:
//   - The label depends only on the binding (the bundle: the same for every application of a
//     subscription) and the domain, so the CNAME published for the first application serves every
//     renewal: the CA's TXT lookup follows it to the zone this client writes to.
//   - It depends on nothing secret or stored, so it survives the loss of this client's database, a
//     new ACME account or a new CA; a customer's CNAME never has to change.
//   - Different subscriptions covering the same domain get different labels, so values published
//     for one never satisfy the other's CA lookup; only the subscription the customer's CNAME
//     names can validate.
//   - The target is one label below the zone, so the zone's server needs no knowledge of customer
//     domains; 160 bits make collisions irrelevant.
func Delegation(zone, binding, domain string) ca.DNSRecord {
	base := baseDomain(domain)
	return ca.DNSRecord{Name: ChallengeLabel + "." + base, Type: "CNAME", Value: target(zone, binding, base)}
}

// target is the delegated name for a base domain, without the trailing dot.
func target(zone, binding, base string) string {
	sum := sha256.Sum256([]byte(binding + "\n" + base))
	return strings.ToLower(labelEncoding.EncodeToString(sum[:20])) + "." + zone
}

// baseDomain is a domain without its wildcard label, normalized.
func baseDomain(domain string) string {
	return strings.TrimPrefix(normalizeDomain(domain), "*.")
}

// normalizeDomain is a name in lower case without a trailing dot.
func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// instructions are the CNAMEs of an application's domains, one per base domain, in the order of
// the domains.
func instructions(zone, binding string, domains []string) []ca.DNSRecord {
	var out []ca.DNSRecord
	for _, d := range domains {
		rec := Delegation(zone, binding, d)
		if !slices.Contains(out, rec) {
			out = append(out, rec)
		}
	}
	return out
}
