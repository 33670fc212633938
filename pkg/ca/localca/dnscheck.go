package localca

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"

	"github.com/certhosting/certhosting/pkg/ca"
)

// maxCNAMEs bounds the CNAME chain a validation record may sit behind (a customer may delegate
// the record to another zone with a CNAME).
const maxCNAMEs = 8

// resolver asks one DNS server (the configured Resolver: the zone's authoritative server in tests
// and `make run`, or a recursive resolver) for validation records.
type resolver struct {
	addr    string
	timeout time.Duration // per query
}

// recordCheck is what a lookup found for one validation record.
type recordCheck struct {
	record ca.DNSRecord
	found  bool   // present with the expected value
	seen   string // otherwise, what was seen instead, for the rejection message
	err    error  // the lookup failed: no verdict about the record
}

// check looks up every record, a few at a time.
func (r resolver) check(ctx context.Context, records []ca.DNSRecord) []recordCheck {
	out := make([]recordCheck, len(records))
	var g errgroup.Group
	g.SetLimit(8)
	for i, rec := range records {
		g.Go(func() error {
			out[i] = recordCheck{record: rec}
			values, nx, err := r.lookupTXT(ctx, rec.Name)
			switch {
			case err != nil:
				out[i].err = err
			case slices.Contains(values, rec.Value):
				out[i].found = true
			case nx:
				out[i].seen = "no such name (NXDOMAIN)"
			case len(values) == 0:
				out[i].seen = "no TXT record at that name"
			default:
				out[i].seen = fmt.Sprintf("other TXT values %q", values)
			}
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// lookupTXT returns the TXT values at name (each record's strings joined, as for long values split
// into 255-byte strings), following CNAMEs (see lookup).
func (r resolver) lookupTXT(ctx context.Context, name string) (values []string, nx bool, err error) {
	rrs, nx, err := r.lookup(ctx, name, dns.TypeTXT)
	for _, rr := range rrs {
		values = append(values, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return values, nx, err
}

// lookup returns the records of type qtype at name, following a CNAME in the answer, and asking
// again for its target when the server did not answer for it. nx reports NXDOMAIN (for name, or
// the end of its chain). An error means no answer to judge by: a timeout, an unreachable server,
// SERVFAIL, REFUSED.
func (r resolver) lookup(ctx context.Context, name string, qtype uint16) (rrs []dns.RR, nx bool, err error) {
	name = dns.Fqdn(name)
	typ := dns.TypeToString[qtype]
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
			return nil, false, fmt.Errorf("%s %s: the DNS server answered %s", name, typ, dns.RcodeToString[resp.Rcode])
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
	return nil, false, fmt.Errorf("%s %s: CNAME chain longer than %d", name, typ, maxCNAMEs)
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
func (r resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(dns.DefaultMsgSize, false)
	m.RecursionDesired = true // harmless to an authoritative server, needed by a recursive one
	resp, _, err := (&dns.Client{Net: "udp", Timeout: r.timeout}).ExchangeContext(ctx, m, r.addr)
	if err == nil && resp.Truncated {
		resp, _, err = (&dns.Client{Net: "tcp", Timeout: r.timeout}).ExchangeContext(ctx, m, r.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: query to %s: %w", name, dns.TypeToString[qtype], r.addr, err)
	}
	return resp, nil
}
