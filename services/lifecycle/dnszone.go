package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// DelegatedZone is the DNS zone the service answers ACME DNS-01 challenges in, so renewals verify
// with no customer action (the way AWS ACM and Google Certificate Manager do it): a customer
// publishes one CNAME, `_acme-challenge.<domain>` → `<label>.<zone>`, once; for every application
// the ACME client publishes the challenge's TXT value at `<label>.<zone>` here, and the CA's
// resolver follows the CNAME to the service's own authoritative DNS server (pkg/dnsserver with this
// zone as its Source).
//
// The records live in the lifecycle database, so a restarted process, or any replica, answers the
// same. The zone's parent must delegate it to the server (NS records), which is the operator's one
// piece of DNS setup.
type DelegatedZone struct {
	store *store.Store
	clk   clockwork.Clock
	log   *slog.Logger
	zone  string // canonical, with the trailing dot
	ns    string // the server's own name, for the SOA and NS records
}

// zoneTTL is the TTL of the zone's records: short, because challenge values change with every
// application.
const zoneTTL = 60

// NewDelegatedZone serves zone (e.g. "acme.certhosting.example") with ns as its name server's
// name (e.g. "ns1.certhosting.example").
func NewDelegatedZone(st *store.Store, clk clockwork.Clock, log *slog.Logger, zone, ns string) (*DelegatedZone, error) {
	zone, ns = dns.CanonicalName(zone), dns.CanonicalName(ns)
	if _, ok := dns.IsDomainName(zone); !ok || dns.CountLabel(zone) < 2 {
		return nil, fmt.Errorf("delegated zone %q is not a domain name with at least two labels", zone)
	}
	if _, ok := dns.IsDomainName(ns); !ok {
		return nil, fmt.Errorf("delegated zone name server %q is not a domain name", ns)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DelegatedZone{store: st, clk: clk, log: log, zone: zone, ns: ns}, nil
}

// Zone is the zone's name, without the trailing dot.
func (z *DelegatedZone) Zone() string { return strings.TrimSuffix(z.zone, ".") }

// Publish adds a TXT value at fqdn, which must be inside the zone.
func (z *DelegatedZone) Publish(ctx context.Context, fqdn, value string) error {
	name, err := z.inZone(fqdn)
	if err != nil {
		return err
	}
	return z.store.PublishRecord(ctx, name, value, z.clk.Now())
}

// Remove removes a TXT value at fqdn.
func (z *DelegatedZone) Remove(ctx context.Context, fqdn, value string) error {
	name, err := z.inZone(fqdn)
	if err != nil {
		return err
	}
	return z.store.RemoveRecord(ctx, name, value)
}

func (z *DelegatedZone) inZone(fqdn string) (string, error) {
	name := dns.CanonicalName(fqdn)
	if !dns.IsSubDomain(z.zone, name) || name == z.zone {
		return "", fmt.Errorf("%q is not inside the delegated zone %s", fqdn, z.zone)
	}
	return name, nil
}

// Lookup implements dnsserver.Source: the zone's SOA and NS at its apex, and the published TXT
// values below it. Names outside the zone do not exist here.
func (z *DelegatedZone) Lookup(name string, qtype uint16) ([]dns.RR, bool) {
	name = dns.CanonicalName(name)
	if !dns.IsSubDomain(z.zone, name) {
		return nil, false
	}
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: zoneTTL}
	}
	if name == z.zone {
		var rrs []dns.RR
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			rrs = append(rrs, &dns.SOA{Hdr: hdr(dns.TypeSOA), Ns: z.ns, Mbox: "hostmaster." + z.zone,
				Serial: uint32(z.clk.Now().Unix()), Refresh: 3600, Retry: 600, Expire: 86400, Minttl: zoneTTL})
		}
		if qtype == dns.TypeNS || qtype == dns.TypeANY {
			rrs = append(rrs, &dns.NS{Hdr: hdr(dns.TypeNS), Ns: z.ns})
		}
		return rrs, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	values, err := z.store.Records(ctx, name)
	if err != nil {
		// The server answers from what it has; an empty answer makes the CA's resolver retry,
		// which is what we want from a database hiccup.
		z.log.Error("delegated zone lookup failed", "name", name, "err", err)
		return nil, true
	}
	if len(values) == 0 {
		return nil, false
	}
	if qtype != dns.TypeTXT && qtype != dns.TypeANY {
		return nil, true
	}
	rrs := make([]dns.RR, 0, len(values))
	for _, v := range values {
		rrs = append(rrs, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: []string{v}})
	}
	return rrs, true
}
