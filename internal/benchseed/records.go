package benchseed

import (
	"context"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// PublishRecords sets in zone the validation record of every seeded bundle (in the lifecycle
// database at lifecycleDB: a SQLite path or a PostgreSQL URL, as for the services) whose first
// certificate renews by renewingBy (a far-future time for all of them), as the local CA at
// localcaDB asks for it, and returns how many it set. The local CA's records are derived from its
// own secret, so PublishRecords opens (at the first call, creates) the CA's database with the
// service's master key, as the lifecycle service would. Set replaces an earlier run's value for
// the same name, so one zone can serve several seeded stores in turn.
func PublishRecords(ctx context.Context, zone *dnsserver.MemorySource, lifecycleDB, localcaDB, master string, renewingBy time.Time) (int, error) {
	box, err := secrets.Parse(master)
	if err != nil {
		return 0, err
	}
	authority, err := localca.Open(ctx, localca.Config{DBPath: localcaDB, Box: box, Resolver: "127.0.0.1:53"})
	if err != nil {
		return 0, err
	}
	defer authority.Close()
	d, err := db.Open(ctx, lifecycleDB, db.Options{})
	if err != nil {
		return 0, err
	}
	defer d.Close()
	var bundles []struct {
		ID      string `db:"bundle_id"`
		Domains string `db:"domains"`
	}
	if err := d.Select(ctx, &bundles, `SELECT b.bundle_id, a.domains FROM bundles b
		JOIN applications a ON a.application_id = b.template_application_id
		JOIN certificates c ON c.bundle_id = b.bundle_id AND c.sequence = 1
		WHERE c.renew_at <= ?`, db.Micros(renewingBy)); err != nil {
		return 0, err
	}
	count := 0
	for _, b := range bundles {
		bundle := b.ID
		names := strings.Split(strings.Trim(b.Domains, `[]`), ",")
		for i := range names {
			names[i] = strings.Trim(names[i], `"`)
		}
		for _, rec := range authority.Instructions(bundle, names) {
			name := dns.Fqdn(rec.Name)
			zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{rec.Value}})
			count++
		}
	}
	return count, nil
}
