package localca_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/localca"
)

const caaIdentity = "certhosting.test"

func caa(name string, flag uint8, tag, value string) dns.RR {
	return &dns.CAA{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: 60}, Flag: flag, Tag: tag, Value: value}
}

// TestCAA: with the validation records published, the CA issues only where the domains' CAA
// records (the closest set, climbing to the top-level domain) permit it, and otherwise rejects
// with ReasonCAA naming the domain, where the set is, and whom it allows.
func TestCAA(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		domains []string
		records []dns.RR
		want    string // "" issued; else a substring of the CAA rejection
	}{
		{"no CAA anywhere", []string{"shop.example.com"}, nil, ""},
		{"names this CA", []string{"shop.example.com"}, []dns.RR{caa("shop.example.com", 0, "issue", caaIdentity)}, ""},
		{"names this CA, in other case and with parameters", []string{"shop.example.com"},
			[]dns.RR{caa("example.com", 0, "issue", "CertHosting.Test; accounturi=https://x/1")}, ""},
		{"a parent names another CA", []string{"www.shop.example.com"},
			[]dns.RR{caa("example.com", 0, "issue", "letsencrypt.org")},
			"www.shop.example.com: CAA at example.com allows only letsencrypt.org (issue)"},
		{"the closest set wins", []string{"shop.example.com"},
			[]dns.RR{caa("example.com", 0, "issue", "letsencrypt.org"), caa("shop.example.com", 0, "issue", caaIdentity)}, ""},
		{"iodef only restricts nothing", []string{"shop.example.com"}, []dns.RR{caa("example.com", 0, "iodef", "mailto:sec@example.com")}, ""},
		{"no CA at all", []string{"shop.example.com"}, []dns.RR{caa("example.com", 0, "issue", ";")}, `allows only ";" (no CA)`},
		{"one of two domains forbids", []string{"shop.example.com", "shop.example.org"},
			[]dns.RR{caa("example.org", 0, "issue", "pki.goog")}, "shop.example.org: CAA at example.org allows only pki.goog"},
		{"critical unknown property", []string{"shop.example.com"},
			[]dns.RR{caa("example.com", 128, "tbs", "x"), caa("example.com", 0, "issue", caaIdentity)}, `critical property "tbs"`},
		{"non-critical unknown property", []string{"shop.example.com"},
			[]dns.RR{caa("example.com", 0, "tbs", "x"), caa("example.com", 0, "issue", caaIdentity)}, ""},
		{"wildcard: issuewild names another CA", []string{"*.example.com", "example.com"},
			[]dns.RR{caa("example.com", 0, "issue", caaIdentity), caa("example.com", 0, "issuewild", "letsencrypt.org")},
			"*.example.com: CAA at example.com allows only letsencrypt.org (issuewild)"},
		{"wildcard: issuewild names this CA", []string{"*.example.com"},
			[]dns.RR{caa("example.com", 0, "issue", "letsencrypt.org"), caa("example.com", 0, "issuewild", caaIdentity)}, ""},
		{"wildcard: issue applies without issuewild", []string{"*.example.com"},
			[]dns.RR{caa("example.com", 0, "issue", "letsencrypt.org")}, "allows only letsencrypt.org (issue)"},
		{"not a wildcard: issuewild does not apply", []string{"example.com"},
			[]dns.RR{caa("example.com", 0, "issue", caaIdentity), caa("example.com", 0, "issuewild", ";")}, ""},
		{"behind a CNAME", []string{"shop.example.com"},
			[]dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "shop.example.com.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "shops.hoster.net."},
				caa("shops.hoster.net", 0, "issue", "digicert.com")},
			"CAA at shops.hoster.net allows only digicert.com"},
		{"not at the parent of a CNAME's target", []string{"shop.example.com"},
			[]dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: "shop.example.com.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "shops.hoster.net."},
				caa("hoster.net", 0, "issue", "digicert.com")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(c *localca.Config) { c.CAAIdentity = caaIdentity })
			e.zone.Add(tc.records...)
			sub := e.submit(dvRequest(t, "app", tc.domains...))
			e.publish(sub.Instructions...)
			st := e.status(sub.Ref)
			if tc.want == "" {
				if st.State != ca.Issued {
					t.Fatalf("Status = %v %s %q, want issued", st.State, st.Reason, st.Message)
				}
				return
			}
			if st.State != ca.Rejected || st.Reason != ca.ReasonCAA || !strings.Contains(st.Message, tc.want) {
				t.Errorf("Status = %v %s %q, want rejected, CAA, %q", st.State, st.Reason, st.Message, tc.want)
			}
		})
	}
}

// TestCAALookupFails: a CAA lookup the DNS server fails (SERVFAIL) is no verdict, however long it
// keeps failing: the application stays pending, polled with backoff, and is issued once the CAA
// lookups get answers.
func TestCAALookupFails(t *testing.T) {
	t.Parallel()
	// A DNS server that fails CAA queries (while failCAA) and answers the rest from a validation
	// record set below.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		records []dns.RR
		failCAA = true
	)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		defer mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if r.Question[0].Qtype == dns.TypeCAA && failCAA {
			m.Rcode = dns.RcodeServerFailure
		} else {
			for _, rr := range records {
				if strings.EqualFold(rr.Header().Name, r.Question[0].Name) {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })

	e := newEnv(t, func(c *localca.Config) { c.CAAIdentity = caaIdentity; c.Resolver = pc.LocalAddr().String() })
	sub := e.submit(dvRequest(t, "app", "shop.example.com"))
	if st := e.status(sub.Ref); st.State != ca.Pending {
		t.Fatalf("before the records are published = %v %s %q; want pending", st.State, st.Reason, st.Message)
	}
	e.clk.Advance(50 * time.Minute)
	mu.Lock()
	for _, rec := range sub.Instructions {
		records = append(records, &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(rec.Name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{rec.Value}})
	}
	mu.Unlock()
	var retries []time.Duration
	for range 12 {
		st := e.status(sub.Ref)
		if st.State != ca.Pending || st.RetryAfter <= 0 {
			t.Fatalf("%v after the records were seen, with the CAA lookup failing = %v %s %q; want pending with a retry",
				e.clk.Since(start.Add(50*time.Minute)), st.State, st.Reason, st.Message)
		}
		retries = append(retries, st.RetryAfter)
		e.clk.Advance(time.Hour) // twelve hours in all: far past the DNS timeout
	}
	if retries[0] >= retries[3] || retries[11] > 5*time.Minute {
		t.Errorf("retries %v: want a backoff, growing, at most 5 minutes", retries)
	}
	mu.Lock()
	failCAA = false
	mu.Unlock()
	if st := e.status(sub.Ref); st.State != ca.Issued {
		t.Errorf("with CAA lookups answered again = %v %s %q; want issued", st.State, st.Reason, st.Message)
	}
}
