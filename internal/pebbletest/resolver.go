package pebbletest

import (
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// forwarder is the Source of the resolver Pebble validates through: a pkg/dnsserver answers
// Pebble's query and follows CNAMEs, asking the forwarder for one name and type at a time; the
// forwarder asks the server of the zone that holds the name (a delegated zone's server, else
// challtestsrv, the customer's DNS). So `_acme-challenge.shop.example.com TXT` is answered with
// the customer's CNAME from challtestsrv and the TXT values at its target from the delegated
// zone's server, in one answer, the way a recursive resolver would.
//
// A server that does not answer makes the name look absent (a Source cannot fail): Pebble then
// reports the missing record, and the forwarder logs the failure to the test.
type forwarder struct {
	fallback string
	client   *dns.Client
	t        testing.TB

	mu    sync.RWMutex
	zones map[string]string // canonical zone → server address
}

func newForwarder(fallback string, t testing.TB) *forwarder {
	return &forwarder{fallback: fallback, t: t, zones: map[string]string{},
		client: &dns.Client{Net: "tcp", Timeout: 2 * time.Second}}
}

func (f *forwarder) delegate(zone, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.zones[dns.CanonicalName(zone)] = addr
}

// server is the address of the server for name: the longest delegated zone holding it, else the
// customer's DNS.
func (f *forwarder) server(name string) string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	best, addr := "", f.fallback
	for zone, a := range f.zones {
		if dns.IsSubDomain(zone, name) && len(zone) > len(best) {
			best, addr = zone, a
		}
	}
	return addr
}

// Lookup implements dnsserver.Source by asking the name's server. It keeps only the records
// owned by name (a server may add the records of a CNAME's target, which the dnsserver asks for
// itself). challtestsrv never says NXDOMAIN, so an unknown name there is an empty name.
func (f *forwarder) Lookup(name string, qtype uint16) ([]dns.RR, bool) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	addr := f.server(name)
	in, _, err := f.client.Exchange(m, addr)
	if err != nil {
		f.t.Logf("pebbletest resolver: %s %s at %s: %v", name, dns.TypeToString[qtype], addr, err)
		return nil, false
	}
	var out []dns.RR
	for _, rr := range in.Answer {
		if h := rr.Header(); dns.CanonicalName(h.Name) == name && (h.Rrtype == qtype || qtype == dns.TypeANY) {
			out = append(out, rr)
		}
	}
	return out, in.Rcode != dns.RcodeNameError
}
