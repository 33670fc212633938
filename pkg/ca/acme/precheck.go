package acme

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The CNAME pre-check. An ACME CA validates a challenge once, soon after it is accepted, and a
// failed challenge fails the order. A first application's CNAME is published by the customer
// after Submit returned the instructions, so accepting at once would fail every first
// application. With Config.CNAMEResolver set, a challenge is accepted only once the customer's
// CNAME resolves to its target there; until then the application is pending, and after
// CNAMETimeout without it, rejected with ReasonDNS naming the record. Renewals find the CNAME in
// place and are accepted at the first step. A lookup that fails (timeout, SERVFAIL) is no
// evidence either way: it never rejects.

// DefaultCNAMETimeout is how long an application waits for its CNAMEs with a CNAMEResolver.
const DefaultCNAMETimeout = time.Hour

// cnameRecheck is the RetryAfter of an application waiting for its CNAME: the customer acts in
// minutes, not seconds, and each poll costs the CA an order and authorization fetch.
const cnameRecheck = 10 * time.Second

// cnameQueryTimeout bounds one DNS query of the pre-check.
const cnameQueryTimeout = 2 * time.Second

// cnameTarget is the target of the CNAME at name on the resolver at addr, lower case without the
// trailing dot; "" when there is none.
func cnameTarget(ctx context.Context, addr, name string) (string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeCNAME)
	m.RecursionDesired = true
	ctx, cancel := context.WithTimeout(ctx, cnameQueryTimeout)
	defer cancel()
	in, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, m, addr)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, m, addr)
	}
	if err != nil {
		return "", err
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return "", fmt.Errorf("%s CNAME: %s", name, dns.RcodeToString[in.Rcode])
	}
	for _, rr := range in.Answer {
		if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(dns.Fqdn(c.Hdr.Name), dns.Fqdn(name)) {
			return normalizeDomain(c.Target), nil
		}
	}
	return "", nil
}

// delegationReady reports whether the CNAME of base points at want. A missing or wrong CNAME past
// the timeout yields the rejection message.
func (c *Client) delegationReady(ctx context.Context, app application, base, want string) (ready bool, reject string) {
	if c.cnameResolver == "" {
		return true, ""
	}
	name := ChallengeLabel + "." + base
	got, err := cnameTarget(ctx, c.cnameResolver, name)
	if err == nil && got == want {
		return true, ""
	}
	if err != nil {
		c.log.Warn("CNAME lookup failed; challenge not accepted yet", "ref", app.Ref, "name", name, "err", err)
		return false, ""
	}
	if waited := c.clk.Now().Sub(app.CreateTime); waited >= c.cnameTimeout {
		found := "no CNAME"
		if got != "" {
			found = "a CNAME to " + got
		}
		return false, fmt.Sprintf("DNS delegation not found within %s: %s CNAME %s expected, %s found", c.cnameTimeout, name, want, found)
	}
	c.log.Debug("CNAME not in place yet", "ref", app.Ref, "name", name, "want", want, "got", got)
	return false, ""
}
