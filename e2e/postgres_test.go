package e2e

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// TestPairOnPostgres: both services as processes with every database on PostgreSQL (order,
// lifecycle, identity, local CA; each the test's own): purchases are delivered, first
// certificates issued and hosted, and renewed by themselves, across a SIGKILL of the lifecycle
// service in the middle.
func TestPairOnPostgres(t *testing.T) {
	t.Parallel()
	databases := map[string]string{}
	for _, name := range []string{"order", "lifecycle", "identity", "localca"} {
		databases[name] = dbtest.URL(t, db.Postgres, "e2e_"+name)
	}
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	// On PostgreSQL the ticker claims the rows it works on for -lease, and a claim the killed
	// process held is honoured by its successor until the lease ends (it cannot tell a dead
	// replica from a slow one). The default 30 s lease is nothing beside 90-day certificates but
	// as long as these 30-second ones: a claim caught by the SIGKILL would let one expire before
	// its renewal. The test compresses the lease with the certificates' lifetime.
	e := startWith(t, pair.Options{Dir: t.TempDir(), Databases: databases, LifecycleArgs: []string{
		"-localca-resolver", dnsSrv.Addr(), "-localca-recheck", "1s", "-localca-max-validity", "30s", "-ticker-interval", "1s",
		"-lease", "3s",
	}})
	hosted := hostBundles(t, e, "pg", 5, time.Second, func(_ string, r *lifecyclev1.DnsRecord) {
		name := dns.Fqdn(r.GetName())
		zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{r.GetValue()}})
	})
	e.KillLifecycle()
	if err := e.StartLifecycle(t.Context()); err != nil {
		t.Fatal(err)
	}
	lc := lifecyclev1.NewLifecycleServiceClient(dial(t, e.LifecycleAddr, e.DemoKey))
	for _, b := range hosted {
		waitFor(t, time.Until(b.renewAt)+20*time.Second, func() error {
			resp, err := lc.GetCertificate(t.Context(), &lifecyclev1.GetCertificateRequest{CertificateId: b.cert})
			if err != nil {
				return err
			}
			c := resp.GetCertificate()
			if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED || c.GetCurrentIssuance().GetIssuanceId() == b.first {
				return errNotYet("bundle " + b.id + " not renewed yet (" + c.GetState().String() + ")")
			}
			return nil
		})
		checkRenewedOnce(t, lc, b.id, b)
	}
}

type errNotYet string

func (e errNotYet) Error() string { return string(e) }
