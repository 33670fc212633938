package localca

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"

	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
)

// CAA (RFC 8659): before it issues, the CA looks up each domain's CAA record set and issues only
// if the set is empty or names the CA. How it reads the records:
//
//   - The relevant record set of a domain is the CAA records at the domain itself or, if there are
//     none, at the closest parent that has some (up to the top-level domain; never the root).
//     CNAMEs are followed, as a resolver would.
//   - A wildcard domain (*.example.com) is looked up at its base (example.com) and uses the
//     issuewild properties if the set has any, the issue properties otherwise.
//   - A property permits issuance when its issuer domain name (the value before any ';') equals
//     the CA's identity, ignoring case; parameters after ';' are ignored. An empty issuer (";")
//     permits nobody. A set without any issue (or issuewild) property restricts nothing.
//   - A property with the critical flag (128) and a tag the CA does not know forbids issuance.
//   - A lookup that fails (timeout, network error, SERVFAIL, REFUSED) is no verdict, however long
//     it keeps failing: the application stays pending and the lookup is tried again with backoff
//     (dnscheck.Clock.Next). RFC 8659 §3 would let a CA decline to issue then; this one waits,
//     because a resolver outage must never cost a hosted certificate its renewal, and the renewal's
//     escalation tells a person in time if it never ends.

// knownCAATags are the property tags the CA understands; a critical property with any other tag
// forbids issuance.
var knownCAATags = []string{"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"}

// checkCAA applies the domains' CAA records for a CA identified by identity. problem says which
// domains forbid issuance and why (empty: all permit it); err means a lookup failed, so there is no
// verdict yet.
func checkCAA(ctx context.Context, r dnscheck.Resolver, identity string, domains []string) (problem string, err error) {
	problems := make([]string, len(domains))
	var g errgroup.Group
	g.SetLimit(8)
	for i, d := range domains {
		g.Go(func() error {
			wildcard := strings.HasPrefix(d, "*.")
			base := strings.TrimPrefix(d, "*.")
			at, set, err := r.RelevantCAA(ctx, base)
			if err != nil {
				return err
			}
			if why := caaForbids(set, identity, wildcard); why != "" {
				problems[i] = fmt.Sprintf("%s: CAA at %s %s", d, strings.TrimSuffix(at, "."), why)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	problems = slices.DeleteFunc(problems, func(s string) bool { return s == "" })
	if len(problems) == 0 {
		return "", nil
	}
	return fmt.Sprintf("CAA records do not allow %s to issue: %s", identity, strings.Join(problems, "; ")), nil
}

// caaForbids says why set forbids identity to issue (for a wildcard name when wildcard), or ""
// when it permits it.
func caaForbids(set []*dns.CAA, identity string, wildcard bool) string {
	for _, rr := range set {
		if rr.Flag&128 != 0 && !slices.Contains(knownCAATags, strings.ToLower(rr.Tag)) {
			return fmt.Sprintf("has a critical property %q this CA does not know", rr.Tag)
		}
	}
	tag := "issue"
	if wildcard && slices.ContainsFunc(set, func(rr *dns.CAA) bool { return strings.EqualFold(rr.Tag, "issuewild") }) {
		tag = "issuewild"
	}
	var allowed []string
	for _, rr := range set {
		if !strings.EqualFold(rr.Tag, tag) {
			continue
		}
		issuer, _, _ := strings.Cut(rr.Value, ";")
		issuer = strings.TrimSpace(issuer)
		if strings.EqualFold(issuer, identity) {
			return ""
		}
		if issuer == "" {
			issuer = `";" (no CA)`
		}
		allowed = append(allowed, issuer)
	}
	if allowed == nil {
		return "" // no property of that tag: the set restricts nothing
	}
	return fmt.Sprintf("allows only %s (%s)", strings.Join(allowed, ", "), tag)
}
