// Package dnscheck is how the CAs look up what a customer publishes in DNS (validation TXT records,
// CAA records, delegation CNAMEs), and what they may conclude from a lookup.
//
// The rule every CA here follows: only an answer is evidence. A lookup has one of three outcomes:
//
//   - Found: the resolver answered and the record is there with the expected value.
//   - Absent: the resolver answered, and the record is not there: no such name (NXDOMAIN), no
//     record of the type (NODATA), or other values only.
//   - Failed: there is no answer to judge by: a timeout, a network error (nothing listening, no
//     route), SERVFAIL, REFUSED or any other error code, a CNAME chain too long.
//
// An application is rejected for DNS only after resolvers answered Absent for the whole DNS
// timeout (see Clock): time during which lookups failed never counts, however long a resolver
// outage lasts, so an outage is never a verdict by itself.
package dnscheck

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Outcome is what one lookup showed.
type Outcome int

// Lookup outcomes.
const (
	Found Outcome = iota + 1
	Absent
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Found:
		return "found"
	case Absent:
		return "absent"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Result is the outcome of one lookup.
type Result struct {
	Outcome Outcome
	// Seen says, for Absent, what the resolver showed instead (for a rejection message).
	Seen string
	// Err is why a Failed lookup has no answer.
	Err error
}

// DefaultQueryTimeout bounds one DNS query when Resolver.Timeout is zero.
const DefaultQueryTimeout = 2 * time.Second

// maxCNAMEs bounds the CNAME chain a record may sit behind (a customer may delegate a name to
// another zone with a CNAME).
const maxCNAMEs = 8

// Resolver asks one DNS server: the zone's authoritative server in tests and `make run`, or a
// recursive resolver in production.
type Resolver struct {
	// Addr is the server's host:port.
	Addr string
	// Timeout bounds each query (DefaultQueryTimeout when zero).
	Timeout time.Duration
	// Slots, when not nil, bounds the queries in flight, across every copy of the Resolver: a
	// query waits for a free slot (under its ctx, not Timeout) before it is sent.
	Slots chan struct{}
}

// TXT looks up the TXT records at name (following CNAMEs) and says whether one of them is want.
// A record split into several strings counts as their concatenation, as for long values.
func (r Resolver) TXT(ctx context.Context, name, want string) Result {
	rrs, nx, err := r.Lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return Result{Outcome: Failed, Err: err}
	}
	var values []string
	for _, rr := range rrs {
		values = append(values, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	switch {
	case slices.Contains(values, want):
		return Result{Outcome: Found}
	case nx:
		return Result{Outcome: Absent, Seen: "no such name (NXDOMAIN)"}
	case len(values) == 0:
		return Result{Outcome: Absent, Seen: "no TXT record at that name"}
	}
	return Result{Outcome: Absent, Seen: fmt.Sprintf("other TXT values %q", values)}
}

// CNAME asks for the CNAME record at name itself (not following it: the question is where name
// points) and says whether it points at want. Names compare without case and trailing dot.
func (r Resolver) CNAME(ctx context.Context, name, want string) Result {
	name = dns.Fqdn(name)
	resp, err := r.exchange(ctx, name, dns.TypeCNAME)
	if err != nil {
		return Result{Outcome: Failed, Err: err}
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return Result{Outcome: Failed, Err: rcodeError(name, dns.TypeCNAME, resp.Rcode)}
	}
	for _, rr := range resp.Answer {
		if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
			got := normalize(c.Target)
			if got == normalize(want) {
				return Result{Outcome: Found}
			}
			return Result{Outcome: Absent, Seen: "a CNAME to " + got}
		}
	}
	if resp.Rcode == dns.RcodeNameError {
		return Result{Outcome: Absent, Seen: "no such name (NXDOMAIN)"}
	}
	return Result{Outcome: Absent, Seen: "no CNAME"}
}

// RelevantCAA finds the CAA record set that applies to name (RFC 8659 §3): the records at name
// itself or, if there are none, at the closest parent that has some, up to the top-level domain
// (never the root). CNAMEs are followed, as a resolver would. It returns where the set is (behind
// a CNAME, its target) and the set, empty when no name up the tree has one. An error means a
// lookup had no answer: nothing can be concluded from it.
func (r Resolver) RelevantCAA(ctx context.Context, name string) (at string, set []*dns.CAA, err error) {
	name = dns.Fqdn(strings.ToLower(name))
	for {
		rrs, _, err := r.Lookup(ctx, name, dns.TypeCAA)
		if err != nil {
			return "", nil, err
		}
		for _, rr := range rrs {
			set = append(set, rr.(*dns.CAA))
		}
		if len(set) > 0 {
			return set[0].Hdr.Name, set, nil
		}
		off, end := dns.NextLabel(name, 0)
		if end || dns.CountLabel(name) <= 1 {
			return name, nil, nil
		}
		name = name[off:]
	}
}

// Lookup returns the records of type qtype at name, following a CNAME in the answer, and asking
// again for its target when the server did not answer for it. nx reports NXDOMAIN (for name, or
// the end of its chain). An error means no answer to judge by (Failed).
func (r Resolver) Lookup(ctx context.Context, name string, qtype uint16) (rrs []dns.RR, nx bool, err error) {
	name = dns.Fqdn(name)
	for range maxCNAMEs {
		resp, err := r.exchange(ctx, name, qtype)
		if err != nil {
			return nil, false, err
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, true, nil
		default:
			return nil, false, rcodeError(name, qtype, resp.Rcode)
		}
		target := followCNAMEs(resp.Answer, name)
		for _, rr := range resp.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, target) {
				rrs = append(rrs, rr)
			}
		}
		if len(rrs) > 0 || strings.EqualFold(target, name) {
			return rrs, false, nil
		}
		name = target // the answer stopped at a CNAME: ask for its target
	}
	return nil, false, fmt.Errorf("%s %s: CNAME chain longer than %d", name, dns.TypeToString[qtype], maxCNAMEs)
}

func rcodeError(name string, qtype uint16, rcode int) error {
	return fmt.Errorf("%s %s: the DNS server answered %s", name, dns.TypeToString[qtype], dns.RcodeToString[rcode])
}

// followCNAMEs is where the CNAMEs in answer lead from name (name itself if none applies).
func followCNAMEs(answer []dns.RR, name string) string {
	seen := map[string]bool{strings.ToLower(name): true}
	for {
		next := ""
		for _, rr := range answer {
			if cn, ok := rr.(*dns.CNAME); ok && strings.EqualFold(cn.Hdr.Name, name) {
				next = dns.Fqdn(cn.Target)
				break
			}
		}
		if next == "" || seen[strings.ToLower(next)] {
			return name
		}
		seen[strings.ToLower(next)] = true
		name = next
	}
}

// exchange sends one query over UDP, and again over TCP when the answer was truncated.
func (r Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if r.Slots != nil {
		select {
		case r.Slots <- struct{}{}:
			defer func() { <-r.Slots }()
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s: query to %s: %w", name, dns.TypeToString[qtype], r.Addr, ctx.Err())
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(dns.DefaultMsgSize, false)
	m.RecursionDesired = true // harmless to an authoritative server, needed by a recursive one
	resp, _, err := (&dns.Client{Net: "udp", Timeout: timeout}).ExchangeContext(ctx, m, r.Addr)
	if err == nil && resp.Truncated {
		resp, _, err = (&dns.Client{Net: "tcp", Timeout: timeout}).ExchangeContext(ctx, m, r.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: query to %s: %w", name, dns.TypeToString[qtype], r.Addr, err)
	}
	return resp, nil
}

// normalize is a name in lower case without the trailing dot.
func normalize(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}
