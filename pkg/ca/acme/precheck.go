package acme

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
)

// The CNAME pre-check. An ACME CA validates a challenge once, soon after it is accepted, and a
// failed challenge fails the order. A first application's CNAME is published by the customer
// after Submit returned the instructions, so accepting at once would fail every first
// application. With Config.CNAMEResolver set, a challenge is accepted only once the customer's
// CNAME points at its target there; until then the application is pending. Renewals find the
// CNAME in place and are accepted at the first step.
//
// Only an answer is evidence (package dnscheck): the application is rejected with ReasonDNS,
// naming the records, once the resolver has answered for CNAMETimeout in all that a CNAME is
// missing or points elsewhere. A lookup that fails (timeout, network error, SERVFAIL, REFUSED)
// stops that clock and keeps the application pending however long it lasts.

// DefaultCNAMETimeout is how long the resolver must answer that an application's CNAMEs are
// missing before it is rejected.
const DefaultCNAMETimeout = time.Hour

// cnameRecheck is the RetryAfter of an application waiting for its CNAME: the customer acts in
// minutes, not seconds, and each poll costs the CA an order and authorization fetch.
const cnameRecheck = 10 * time.Second

// delegation checks the CNAME of base against its target want; without a CNAME resolver it is
// taken as in place.
func (c *Client) delegation(ctx context.Context, base, want string) dnscheck.Result {
	if c.cnameResolver == "" {
		return dnscheck.Result{Outcome: dnscheck.Found}
	}
	return dnscheck.Resolver{Addr: c.cnameResolver}.CNAME(ctx, ChallengeLabel+"."+base, want)
}

// delegationWait is what the pre-checks of one poll found missing: absent CNAMEs (the resolver
// answered), and the first failed lookup.
type delegationWait struct {
	absent []string
	failed error
}

func (w *delegationWait) add(base, want string, res dnscheck.Result) {
	switch res.Outcome {
	case dnscheck.Failed:
		if w.failed == nil {
			w.failed = res.Err
		}
	case dnscheck.Absent:
		w.absent = append(w.absent, fmt.Sprintf("%s.%s CNAME %s expected, %s found", ChallengeLabel, base, want, res.Seen))
	}
}

func (w *delegationWait) waiting() bool { return w.failed != nil || len(w.absent) > 0 }

// settle advances the application's verdict clock with one poll's pre-checks. It returns when to
// poll again, or a rejection once the resolver has answered without the CNAMEs for CNAMETimeout.
func (c *Client) settle(ctx context.Context, app application, w delegationWait) (retry time.Duration, reject *ca.Status, err error) {
	clock, err := dnscheck.Observe(ctx, c.db, "applications", app.Ref, w.failed == nil, c.clk.Now())
	if err != nil {
		return 0, nil, err
	}
	retry = clock.Next(cnameRecheck, c.cnameTimeout)
	if w.failed != nil {
		c.cnameLookups.Failed(app.Ref, w.failed)
		return retry, nil, nil
	}
	c.cnameLookups.Answered(app.Ref)
	if clock.AbsentFor < c.cnameTimeout {
		c.log.Debug("CNAME not in place yet", "ref", app.Ref, "missing", w.absent, "absent_for", clock.AbsentFor)
		return retry, nil, nil
	}
	c.deactivate(ctx, app)
	st, err := c.reject(ctx, app, ca.ReasonDNS, fmt.Sprintf("DNS delegation not found: the DNS answered for %s without it: %s",
		c.cnameTimeout, strings.Join(w.absent, "; ")))
	return 0, &st, err
}

// VerdictTimeout implements ca.VerdictTimer: the CNAME timeout, when the pre-check is on.
func (c *Client) VerdictTimeout() time.Duration {
	if c.cnameResolver == "" {
		return 0
	}
	return c.cnameTimeout
}
