package pebbletest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/pebbletest"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// TestStart: Pebble serves its directory over the test's TLS root, its issuing root is fetched,
// and a restart brings a new one on the same address.
func TestStart(t *testing.T) {
	t.Parallel()
	p := pebbletest.Start(t, pebbletest.Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.TLSRootPEM)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(p.DirectoryURL)
	if err != nil {
		t.Fatalf("GET directory: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET directory: %s", resp.Status)
	}
	first := p.RootPEM()
	if b, _ := pem.Decode(first); b == nil {
		t.Fatalf("issuing root is not PEM: %q", first)
	} else if c, err := x509.ParseCertificate(b.Bytes); err != nil || !c.IsCA {
		t.Fatalf("issuing root does not parse as a CA certificate (%v)", err)
	}
	p.Restart()
	if bytes.Equal(first, p.RootPEM()) {
		t.Error("issuing root is the same after a restart; want the new one")
	}
	p.Stop()
	if _, err := hc.Get(p.DirectoryURL); err == nil {
		t.Error("directory still answers after Stop")
	}
}

// TestResolverFollowsDelegation: the resolver Pebble validates through answers a TXT query for a
// customer's name with the customer's CNAME (challtestsrv) and the TXT values at its target (the
// delegated zone's server); without the CNAME, or with a TXT in the customer's zone only, it
// answers what the customer's zone holds.
func TestResolverFollowsDelegation(t *testing.T) {
	t.Parallel()
	zone := dnsserver.NewMemorySource()
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p := pebbletest.Start(t, pebbletest.Options{Delegations: map[string]string{"acme.certhosting.test": srv.Addr()}})
	zone.Add(&dns.TXT{Hdr: dns.RR_Header{Name: "abc.acme.certhosting.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{"delegated-value"}})
	ctx := t.Context()

	tests := []struct {
		name   string
		setup  func() error
		query  string
		want   []string
		cnames int
	}{
		{"no CNAME: nothing", func() error { return nil }, "_acme-challenge.shop.example.com.", nil, 0},
		{"CNAME into the delegated zone", func() error {
			return p.ChallSrv.SetCNAME(ctx, "_acme-challenge.shop.example.com", "abc.acme.certhosting.test")
		}, "_acme-challenge.shop.example.com.", []string{"delegated-value"}, 1},
		{"CNAME removed", func() error {
			return p.ChallSrv.ClearCNAME(ctx, "_acme-challenge.shop.example.com")
		}, "_acme-challenge.shop.example.com.", nil, 0},
		{"TXT in the customer's zone", func() error {
			return p.ChallSrv.SetTXT(ctx, "_acme-challenge.other.example.com", "customer-value")
		}, "_acme-challenge.other.example.com.", []string{"customer-value"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.setup(); err != nil {
				t.Fatal(err)
			}
			txts, cnames := queryTXT(ctx, t, p.ResolverAddr, tc.query)
			if len(txts) != len(tc.want) || (len(txts) > 0 && txts[0] != tc.want[0]) || cnames != tc.cnames {
				t.Errorf("TXT %s = %q with %d CNAMEs, want %q with %d", tc.query, txts, cnames, tc.want, tc.cnames)
			}
		})
	}
}

// queryTXT asks addr over TCP, as Pebble does.
func queryTXT(ctx context.Context, t *testing.T, addr, name string) (txts []string, cnames int) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	in, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).ExchangeContext(ctx, m, addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range in.Answer {
		switch rr := rr.(type) {
		case *dns.TXT:
			txts = append(txts, rr.Txt...)
		case *dns.CNAME:
			cnames++
		}
	}
	return txts, cnames
}
