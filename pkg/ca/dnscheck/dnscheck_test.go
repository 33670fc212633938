package dnscheck_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
)

// The test zone: one name per case, each answered the way its label says. Queries for a name
// under "servfail." or "refused." get that rcode; names not listed get NXDOMAIN.
var zone = map[string][]dns.RR{
	"_v.right.example.": {txt("_v.right.example.", "want")},
	"_v.wrong.example.": {txt("_v.wrong.example.", "other")},
	"_v.split.example.": {txt("_v.split.example.", "wa", "nt")},
	"_v.empty.example.": {caa("_v.empty.example.", "issue", "ca.test")}, // the name exists, holds no TXT
	"_v.alias.example.": {cname("_v.alias.example.", "_v.right.example.")},
	"right.example.":    {caa("right.example.", "issue", "ca.test")},
	"wrong.example.":    {caa("wrong.example.", "issue", "other-ca.test")},
	"_a.right.example.": {cname("_a.right.example.", "target.zone.test.")},
	"_a.wrong.example.": {cname("_a.wrong.example.", "elsewhere.zone.test.")},
	"_a.plain.example.": {txt("_a.plain.example.", "x")},
}

func txt(name string, parts ...string) dns.RR {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts}
}

func caa(name, tag, value string) dns.RR {
	return &dns.CAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: 60}, Tag: tag, Value: value}
}

func cname(name, target string) dns.RR {
	return &dns.CNAME{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: target}
}

// serve runs the test zone on a UDP port of its own and returns its address.
func serve(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) }, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		switch name := strings.ToLower(q.Name); {
		case strings.HasSuffix(name, "servfail.example."):
			m.Rcode = dns.RcodeServerFailure
		case strings.HasSuffix(name, "refused.example."):
			m.Rcode = dns.RcodeRefused
		case zone[name] == nil:
			m.Rcode = dns.RcodeNameError
		default:
			for _, rr := range zone[name] {
				if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// closedPort is an address nothing listens on: queries to it fail at once (connection refused).
func closedPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// silent is a socket that reads queries and never answers: queries time out.
func silent(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// resolvers are the three ways a DNS server can fail to answer, plus the zone itself.
func resolvers(t *testing.T) map[string]dnscheck.Resolver {
	const timeout = 100 * time.Millisecond
	return map[string]dnscheck.Resolver{
		"zone":          {Addr: serve(t), Timeout: timeout},
		"network error": {Addr: closedPort(t), Timeout: timeout},
		"no answer":     {Addr: silent(t), Timeout: timeout},
	}
}

// TestTXT: the classification of a validation record's lookup.
func TestTXT(t *testing.T) {
	t.Parallel()
	rs := resolvers(t)
	for _, tc := range []struct {
		name, resolver, record string
		want                   dnscheck.Outcome
		seen                   string // in Seen (Absent) or Err (Failed)
	}{
		{"right value", "zone", "_v.right.example", dnscheck.Found, ""},
		{"right value in two strings", "zone", "_v.split.example", dnscheck.Found, ""},
		{"right value behind a CNAME", "zone", "_v.alias.example", dnscheck.Found, ""},
		{"wrong value", "zone", "_v.wrong.example", dnscheck.Absent, `other TXT values ["other"]`},
		{"no TXT at the name", "zone", "_v.empty.example", dnscheck.Absent, "no TXT record"},
		{"NXDOMAIN", "zone", "_v.missing.example", dnscheck.Absent, "NXDOMAIN"},
		{"SERVFAIL", "zone", "_v.servfail.example", dnscheck.Failed, "SERVFAIL"},
		{"REFUSED", "zone", "_v.refused.example", dnscheck.Failed, "REFUSED"},
		{"network error", "network error", "_v.right.example", dnscheck.Failed, "refused"},
		{"timeout", "no answer", "_v.right.example", dnscheck.Failed, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := rs[tc.resolver].TXT(t.Context(), tc.record, "want")
			checkResult(t, got, tc.want, tc.seen)
		})
	}
}

// TestCNAME: the classification of a delegation CNAME's lookup.
func TestCNAME(t *testing.T) {
	t.Parallel()
	rs := resolvers(t)
	for _, tc := range []struct {
		name, resolver, record string
		want                   dnscheck.Outcome
		seen                   string
	}{
		{"right target", "zone", "_a.right.example", dnscheck.Found, ""},
		{"right target, other case and a dot", "zone", "_A.Right.Example.", dnscheck.Found, ""},
		{"wrong target", "zone", "_a.wrong.example", dnscheck.Absent, "a CNAME to elsewhere.zone.test"},
		{"no CNAME at the name", "zone", "_a.plain.example", dnscheck.Absent, "no CNAME"},
		{"NXDOMAIN", "zone", "_a.missing.example", dnscheck.Absent, "NXDOMAIN"},
		{"SERVFAIL", "zone", "_a.servfail.example", dnscheck.Failed, "SERVFAIL"},
		{"REFUSED", "zone", "_a.refused.example", dnscheck.Failed, "REFUSED"},
		{"network error", "network error", "_a.right.example", dnscheck.Failed, "refused"},
		{"timeout", "no answer", "_a.right.example", dnscheck.Failed, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := rs[tc.resolver].CNAME(t.Context(), tc.record, "target.zone.test")
			checkResult(t, got, tc.want, tc.seen)
		})
	}
}

// TestRelevantCAA: the CAA set that applies to a name, or an error (no answer) when a lookup on
// the way up fails. Whether a set allows a CA is the CA's policy (pkg/ca/localca).
func TestRelevantCAA(t *testing.T) {
	t.Parallel()
	rs := resolvers(t)
	for _, tc := range []struct {
		name, resolver, domain string
		wantAt, wantValue      string // the set's place and first value; "" for no set
		wantErr                string
	}{
		{"set naming the CA", "zone", "right.example", "right.example.", "ca.test", ""},
		{"set naming another CA", "zone", "wrong.example", "wrong.example.", "other-ca.test", ""},
		{"set at the parent", "zone", "shop.right.example", "right.example.", "ca.test", ""},
		{"NXDOMAIN all the way up: no set", "zone", "shop.missing.example", "", "", ""},
		{"SERVFAIL", "zone", "shop.servfail.example", "", "", "SERVFAIL"},
		{"REFUSED", "zone", "shop.refused.example", "", "", "REFUSED"},
		{"network error", "network error", "right.example", "", "", "refused"},
		{"timeout", "no answer", "right.example", "", "", "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			at, set, err := rs[tc.resolver].RelevantCAA(t.Context(), tc.domain)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("RelevantCAA = %s %v, %v; want an error mentioning %q", at, set, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("RelevantCAA: %v", err)
			}
			if tc.wantValue == "" {
				if len(set) != 0 {
					t.Errorf("set = %v at %s, want none", set, at)
				}
				return
			}
			if at != tc.wantAt || len(set) != 1 || set[0].Value != tc.wantValue {
				t.Errorf("RelevantCAA = %s %v, want the set naming %s at %s", at, set, tc.wantValue, tc.wantAt)
			}
		})
	}
}

func checkResult(t *testing.T, got dnscheck.Result, want dnscheck.Outcome, detail string) {
	t.Helper()
	if got.Outcome != want {
		t.Fatalf("outcome %v (seen %q, err %v), want %v", got.Outcome, got.Seen, got.Err, want)
	}
	switch want {
	case dnscheck.Failed:
		if got.Err == nil || !strings.Contains(got.Err.Error(), detail) {
			t.Errorf("err = %v, want one mentioning %q", got.Err, detail)
		}
	case dnscheck.Absent:
		if !strings.Contains(got.Seen, detail) {
			t.Errorf("seen = %q, want it to mention %q", got.Seen, detail)
		}
	}
}

// TestContextCancelled: a lookup cut short by its caller is a failure, never an absence.
func TestContextCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := dnscheck.Resolver{Addr: silent(t)}
	if got := r.TXT(ctx, "_v.right.example", "want"); got.Outcome != dnscheck.Failed {
		t.Errorf("TXT with a cancelled context = %v, want failed", got.Outcome)
	}
}

// TestSlots: a query waits for a free slot of Resolver.Slots (here: until its context ends, so
// nothing is sent and the lookup failed), and a slot freed by a finished query is taken again.
func TestSlots(t *testing.T) {
	t.Parallel()
	r := dnscheck.Resolver{Addr: serve(t), Timeout: 100 * time.Millisecond, Slots: make(chan struct{}, 1)}
	if got := r.TXT(t.Context(), "_v.right.example", "want"); got.Outcome != dnscheck.Found {
		t.Fatalf("TXT with a free slot = %v (%v), want found", got.Outcome, got.Err)
	}
	if got := r.TXT(t.Context(), "_v.right.example", "want"); got.Outcome != dnscheck.Found {
		t.Fatalf("TXT after a query returned its slot = %v (%v), want found", got.Outcome, got.Err)
	}
	r.Slots <- struct{}{} // another query holds the only slot
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got := r.TXT(ctx, "_v.right.example", "want")
	checkResult(t, got, dnscheck.Failed, "context canceled")
}
