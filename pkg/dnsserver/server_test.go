package dnsserver_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// rr parses one record in zone-file syntax.
func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("dns.NewRR(%q): %v", s, err)
	}
	return r
}

// start serves src on a loopback port for the test's lifetime.
func start(t *testing.T, src dnsserver.Source) *dnsserver.Server {
	t.Helper()
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: src})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

// query asks addr one question over network ("udp" or "tcp").
func query(t *testing.T, network, addr, name string, qtype uint16, class uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Question[0].Qclass = class
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, name, dns.Type(qtype), err)
	}
	return r
}

// answers renders the answer section compactly ("TXT v", "CNAME www.example.com.").
func answers(m *dns.Msg) string {
	var out []string
	for _, a := range m.Answer {
		fields := strings.Fields(a.String())
		// name ttl class type rdata...
		out = append(out, strings.Join(append([]string{fields[0], fields[3]}, fields[4:]...), " "))
	}
	return strings.Join(out, "; ")
}

func testZone(t *testing.T) *dnsserver.MemorySource {
	src := dnsserver.NewMemorySource()
	src.Add(
		rr(t, "example.com. 3600 IN SOA ns.example.com. admin.example.com. 1 7200 900 1209600 300"),
		rr(t, "www.example.com. 60 IN A 192.0.2.1"),
		rr(t, "alias.example.com. 60 IN CNAME www.example.com."),
		rr(t, "ext.example.com. 60 IN CNAME target.elsewhere.net."),
		rr(t, "loop1.example.com. 60 IN CNAME loop2.example.com."),
		rr(t, "loop2.example.com. 60 IN CNAME loop1.example.com."),
		rr(t, `_certhosting-validation.shop.example.com. 60 IN TXT "v"`),
	)
	return src
}

func TestServerAnswers(t *testing.T) {
	srv := start(t, testZone(t))
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		class   uint16
		rcode   int
		answers string
		soa     bool // SOA in the authority section (negative answers)
	}{
		{"A record", "www.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "www.example.com. A 192.0.2.1", false},
		{"names are case-insensitive", "WWW.Example.COM.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "www.example.com. A 192.0.2.1", false},
		{"TXT record", "_certhosting-validation.shop.example.com.", dns.TypeTXT, dns.ClassINET, dns.RcodeSuccess, `_certhosting-validation.shop.example.com. TXT "v"`, false},
		{"NODATA: name exists, type does not", "www.example.com.", dns.TypeTXT, dns.ClassINET, dns.RcodeSuccess, "", true},
		{"NODATA: empty non-terminal", "shop.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "", true},
		{"NXDOMAIN", "nope.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeNameError, "", true},
		{"NXDOMAIN outside every zone: no SOA", "nope.example.org.", dns.TypeA, dns.ClassINET, dns.RcodeNameError, "", false},
		{"CNAME for another type is followed", "alias.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess,
			"alias.example.com. CNAME www.example.com.; www.example.com. A 192.0.2.1", false},
		{"CNAME for a TXT query", "alias.example.com.", dns.TypeTXT, dns.ClassINET, dns.RcodeSuccess, "alias.example.com. CNAME www.example.com.", false},
		{"CNAME asked for itself", "alias.example.com.", dns.TypeCNAME, dns.ClassINET, dns.RcodeSuccess, "alias.example.com. CNAME www.example.com.", false},
		{"CNAME to a name elsewhere", "ext.example.com.", dns.TypeTXT, dns.ClassINET, dns.RcodeSuccess, "ext.example.com. CNAME target.elsewhere.net.", false},
		{"CNAME loop ends", "loop1.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess,
			"loop1.example.com. CNAME loop2.example.com.; loop2.example.com. CNAME loop1.example.com.", false},
		{"class CH refused", "www.example.com.", dns.TypeA, dns.ClassCHAOS, dns.RcodeRefused, "", false},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				r := query(t, network, srv.Addr(), tc.qname, tc.qtype, tc.class)
				if r.Rcode != tc.rcode {
					t.Errorf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if got := answers(r); got != tc.answers {
					t.Errorf("answers = %q, want %q", got, tc.answers)
				}
				if want := tc.rcode != dns.RcodeRefused; r.Authoritative != want {
					t.Errorf("AA = %v, want %v", r.Authoritative, want)
				}
				gotSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
				if gotSOA != tc.soa {
					t.Fatalf("authority = %v, want SOA: %v", r.Ns, tc.soa)
				}
				if gotSOA && r.Ns[0].Header().Ttl != 300 {
					t.Errorf("negative TTL = %d, want the SOA minimum 300", r.Ns[0].Header().Ttl)
				}
			})
		}
	}
}

func TestServerRefusesZoneTransfer(t *testing.T) {
	srv := start(t, testZone(t))
	if r := query(t, "tcp", srv.Addr(), "example.com.", dns.TypeAXFR, dns.ClassINET); r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR rcode = %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

// TestMemorySourcePublishWithhold is how tests drive a domain check: publish a TXT record, take it
// away, and the very next query sees the change.
func TestMemorySourcePublishWithhold(t *testing.T) {
	src := dnsserver.NewMemorySource()
	srv := start(t, src)
	name := "_certhosting-validation.shop.example.com."
	steps := []struct {
		do      func()
		rcode   int
		answers string
	}{
		{func() {}, dns.RcodeNameError, ""},
		{func() { src.Set(name, dns.TypeTXT, rr(t, name+` 60 TXT "one"`)) }, dns.RcodeSuccess, name + ` TXT "one"`},
		{func() { src.Add(rr(t, name+` 60 TXT "one"`)) }, dns.RcodeSuccess, name + ` TXT "one"`}, // no duplicate
		{func() { src.Set(name, dns.TypeTXT, rr(t, name+` 60 TXT "two"`)) }, dns.RcodeSuccess, name + ` TXT "two"`},
		{func() { src.Remove(name, dns.TypeTXT) }, dns.RcodeNameError, ""},
	}
	for i, s := range steps {
		s.do()
		r := query(t, "udp", srv.Addr(), name, dns.TypeTXT, dns.ClassINET)
		if r.Rcode != s.rcode || answers(r) != s.answers {
			t.Errorf("step %d: got %s %q, want %s %q", i, dns.RcodeToString[r.Rcode], answers(r), dns.RcodeToString[s.rcode], s.answers)
		}
	}
	// With its last record gone, the empty non-terminal above it is gone too.
	if r := query(t, "udp", srv.Addr(), "shop.example.com.", dns.TypeA, dns.ClassINET); r.Rcode != dns.RcodeNameError {
		t.Errorf("parent after removal: rcode = %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
}

// TestServerTruncatesUDP: an answer too large for a plain UDP reply comes back with TC set, and
// whole over TCP.
func TestServerTruncatesUDP(t *testing.T) {
	src := dnsserver.NewMemorySource()
	for i := range 40 {
		src.Add(rr(t, fmt.Sprintf(`big.example.com. 60 TXT "%040d"`, i)))
	}
	srv := start(t, src)
	m := new(dns.Msg)
	m.SetQuestion("big.example.com.", dns.TypeTXT)
	udp := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := udp.Exchange(m, srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Truncated {
		t.Errorf("UDP answer of %d records not truncated", len(r.Answer))
	}
	if r := query(t, "tcp", srv.Addr(), "big.example.com.", dns.TypeTXT, dns.ClassINET); len(r.Answer) != 40 || r.Truncated {
		t.Errorf("TCP answer: %d records, TC=%v; want 40, false", len(r.Answer), r.Truncated)
	}
}
