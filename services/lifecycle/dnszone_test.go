package lifecycle_test

import (
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// TestDelegatedZone: the zone's records, published and removed through the store, are answered
// over DNS by the service's own authoritative server: TXT values below the apex, SOA and NS at it,
// NXDOMAIN for names without records, nothing outside the zone.
func TestDelegatedZone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	z, err := lifecycle.NewDelegatedZone(e.st, e.clk, nil, "acme.certhosting.test", "ns1.certhosting.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: z})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	query := func(name string, qtype uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		r, err := dns.Exchange(m, srv.Addr())
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return r
	}
	const label = "x3k9.acme.certhosting.test"
	if err := z.Publish(e.ctx, label, "value-1"); err != nil {
		t.Fatal(err)
	}
	if err := z.Publish(e.ctx, "X3K9.acme.certhosting.test.", "value-2"); err != nil {
		t.Fatal(err)
	}
	if err := z.Publish(e.ctx, label, "value-1"); err != nil { // again: a no-op
		t.Fatal(err)
	}
	if err := z.Publish(e.ctx, "example.com", "v"); err == nil {
		t.Error("publishing outside the zone succeeded")
	}

	r := query(label, dns.TypeTXT)
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.(*dns.TXT).Txt[0])
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(got) != 2 || got[0] != "value-1" || got[1] != "value-2" {
		t.Errorf("TXT %s = rcode %s, authoritative %v, %v; want both values", label, dns.RcodeToString[r.Rcode], r.Authoritative, got)
	}
	if r := query("acme.certhosting.test", dns.TypeSOA); len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Ns != "ns1.certhosting.test." {
		t.Errorf("SOA at the apex = %v", r.Answer)
	}
	if r := query("nothing.acme.certhosting.test", dns.TypeTXT); r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
		t.Errorf("a name without records: rcode %s, authority %v; want NXDOMAIN with the SOA", dns.RcodeToString[r.Rcode], r.Ns)
	}
	if err := z.Remove(e.ctx, label, "value-1"); err != nil {
		t.Fatal(err)
	}
	if r := query(label, dns.TypeTXT); len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "value-2" {
		t.Errorf("after removing value-1: %v, want value-2 only", r.Answer)
	}

	// value-2 is never removed (as after a removal that failed). A value published at the same
	// name within a day keeps it; one published later drops it.
	txt := func() []string {
		var vs []string
		for _, rr := range query(label, dns.TypeTXT).Answer {
			vs = append(vs, rr.(*dns.TXT).Txt[0])
		}
		return vs
	}
	e.clk.Advance(store.StaleRecordAge)
	if err := z.Publish(e.ctx, label, "value-3"); err != nil {
		t.Fatal(err)
	}
	if got := txt(); !slices.Equal(got, []string{"value-2", "value-3"}) {
		t.Errorf("a day after value-2: %v, want value-2 and value-3", got)
	}
	e.clk.Advance(time.Microsecond)
	if err := z.Publish(e.ctx, label, "value-4"); err != nil {
		t.Fatal(err)
	}
	if got := txt(); !slices.Equal(got, []string{"value-3", "value-4"}) {
		t.Errorf("over a day after value-2: %v, want value-3 and value-4 (value-2 stale)", got)
	}
}

// Every replica's DNS server answers the delegated zone from the shared database: a record that
// one replica publishes (for the ACME order it works on) is answered by another replica's server,
// and gone from it once removed.
func TestDelegatedZoneAcrossReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	other := store.New(grpctest.OpenDBWith(t, e.dir, "lifecycle.db", store.DBOptions()), nil)
	const apex, ns, name = "acme.certhosting.test", "ns1.certhosting.test", "r7.acme.certhosting.test"
	mine, err := lifecycle.NewDelegatedZone(e.st, e.clk, nil, apex, ns)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := lifecycle.NewDelegatedZone(other, e.clk, nil, apex, ns)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: theirs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	lookup := func() (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		return dns.Exchange(m, srv.Addr())
	}
	if err := mine.Publish(e.ctx, name, "token-1"); err != nil {
		t.Fatal(err)
	}
	r, err := lookup()
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "token-1" {
		t.Fatalf("the other replica answers %v, %v; want the TXT record token-1", r, err)
	}
	if err := mine.Remove(e.ctx, name, "token-1"); err != nil {
		t.Fatal(err)
	}
	if r, err := lookup(); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("after removal the other replica answers %v, %v; want NXDOMAIN", r, err)
	}
}
