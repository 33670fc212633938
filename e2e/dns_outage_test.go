package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/services/lifecycle"
)

// TestDNSOutageAndRemovedRecords is the field report's fault run, with real processes: the order
// and lifecycle services and the development DNS server (certhosting-devdns, answering from a
// zone file); 60 hosted bundles on 120-second local-CA certificates (renewal 40 s before expiry,
// escalation 12 s before it); a DNS timeout of 6 s.
//
//   - The renewals fall due over 8 s. Just before the first, the DNS server is paused (SIGSTOP:
//     queries time out), then killed (queries are refused), and started again 12 s after the
//     pause: every renewal is submitted while no lookup gets an answer, for longer than the DNS
//     timeout.
//   - 20 bundles' records are removed before their renewals; 5 of them are put back once their
//     renewal has been rejected.
//   - The lifecycle service is SIGKILLed and restarted twice: during the outage, and while the
//     renewals it held up complete and the others are being rejected.
//
// Then, in the stopped service's databases:
//   - no certificate of a bundle whose records stayed (or came back) expired: each got exactly one
//     successor, issued before its predecessor's not_after;
//   - every bundle whose records stayed away expired with exactly one case, urgent, opened at least
//     escalate_before (12 s) before the expiry (less the moment an escalation's tick takes), and
//     its renewal was retried by itself until then;
//   - no bundle has more than one case (one incident, one case);
//   - the CA received exactly one application per attempt: the lifecycle's applications and the
//     CA's are the same set.
func TestDNSOutageAndRemovedRecords(t *testing.T) {
	t.Parallel()
	const (
		bundles    = 60
		removed    = 20 // the last 20 lose their records...
		restored   = 5  // ...and the last 5 of those get them back after a rejection
		validity   = 120 * time.Second
		dnsTimeout = 6 * time.Second
		outage     = 12 * time.Second // longer than dnsTimeout
		spread     = 8 * time.Second  // the first issuances, and so the renewals, over this long
	)
	escalateBefore := lifecycle.EscalationWindow(validity)
	began := time.Now()
	dir := t.TempDir()
	zone := &zoneFile{path: filepath.Join(dir, "dns.zone"), lines: map[string]string{}}
	zone.write(t)

	var dnsAddr string
	e := startAfter(t, pair.Options{Dir: dir}, func(p *pair.Pair) {
		dnsAddr = startDevDNS(t, p, "127.0.0.1:0", zone.path)
		p.AddLifecycleArgs("-localca-resolver", dnsAddr, "-localca-recheck", "1s", "-localca-max-validity", validity.String(),
			"-localca-dns-timeout", dnsTimeout.String(), "-ticker-interval", "1s")
	})
	conn := dial(t, e.LifecycleAddr, e.DemoKey)
	lc := lifecyclev1.NewLifecycleServiceClient(conn)
	restart := func(what string) {
		t.Helper()
		e.KillLifecycle()
		if err := e.StartLifecycle(t.Context()); err != nil {
			t.Fatal(err)
		}
		conn.ResetConnectBackoff()
		t.Logf("%s: lifecycle service SIGKILLed and restarted", what)
	}

	hosted := hostBundles(t, e, "outage", bundles, spread, func(bundleID string, r *lifecyclev1.DnsRecord) {
		zone.set(bundleID, fmt.Sprintf("%s. 60 IN TXT %q", r.GetName(), r.GetValue()))
		zone.write(t)
	})
	firstDue, lastDue := hosted[0].renewAt, hosted[0].renewAt
	for _, b := range hosted {
		firstDue, lastDue = minTime(firstDue, b.renewAt), maxTime(lastDue, b.renewAt)
	}
	for _, b := range hosted[bundles-removed:] {
		zone.remove(b.id)
	}
	zone.write(t)
	t.Logf("%d bundles hosted, %d records removed; renewals due from %s to %s", bundles, removed,
		firstDue.Format("15:04:05.000"), lastDue.Format("15:04:05.000"))

	// The outage, and the first kill inside it.
	sleepUntil(firstDue.Add(-2 * time.Second))
	outageStart := time.Now()
	if err := e.PauseProcess("devdns"); err != nil {
		t.Fatal(err)
	}
	sleepUntil(outageStart.Add(4 * time.Second))
	restart("4 s into the DNS outage")
	sleepUntil(outageStart.Add(outage / 2))
	e.KillProcess("devdns")
	sleepUntil(outageStart.Add(outage))
	startDevDNS(t, e.Pair, dnsAddr, zone.path)
	outageEnd := time.Now()
	t.Logf("DNS server paused, then killed, for %v (until %s)", outageEnd.Sub(outageStart).Round(time.Millisecond),
		outageEnd.Format("15:04:05.000"))

	// The second kill, while the held-up renewals complete and the others are being rejected.
	sleepUntil(outageEnd.Add(3 * time.Second))
	restart("3 s after the DNS came back")

	// The customers who put their record back, once their renewal was rejected.
	back := hosted[bundles-restored:]
	waitFor(t, 45*time.Second, func() error {
		waiting := 0
		for _, b := range back {
			if zone.has(b.id) {
				continue
			}
			resp, err := lc.GetCertificate(t.Context(), &lifecyclev1.GetCertificateRequest{CertificateId: b.cert}, grpc.WaitForReady(true))
			if err != nil {
				return err
			}
			if resp.GetCertificate().GetRenewalStatus() != lifecyclev1.RenewalStatus_RENEWAL_STATUS_FAILED {
				waiting++
				continue
			}
			zone.restore(b.id)
			zone.write(t)
		}
		if waiting > 0 {
			return fmt.Errorf("%d bundles' renewals not rejected yet", waiting)
		}
		return nil
	})
	t.Logf("%d records put back after their renewals were rejected", restored)

	// Until every first certificate has passed its not_after, and the renewals have settled: those
	// with records renewed, the others with no retry planned any more.
	var lastExpiry time.Time
	for _, b := range hosted {
		lastExpiry = maxTime(lastExpiry, b.notAfter)
	}
	waitFor(t, time.Until(lastExpiry)+30*time.Second, func() error {
		if time.Now().Before(lastExpiry.Add(time.Second)) {
			return fmt.Errorf("the last first certificate expires at %s", lastExpiry.Format("15:04:05.000"))
		}
		resp, err := lc.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{PageSize: listPageSize}, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		for _, bp := range resp.GetBundles() {
			c := instance1(bp)
			if c.GetCurrentApplication().GetStatus() == lifecyclev1.ApplicationStatus_APPLICATION_STATUS_PENDING ||
				c.GetCurrentApplication().GetStatus() == lifecyclev1.ApplicationStatus_APPLICATION_STATUS_SUBMITTING || c.GetRetryTime() != nil {
				return fmt.Errorf("bundle %s: renewal still under way (%v, retry at %v)", bp.GetBundleId(), c.GetCurrentApplication().GetStatus(), c.GetRetryTime())
			}
		}
		return nil
	})
	if err := e.StopLifecycle(); err != nil {
		t.Fatalf("stopping the lifecycle service: %v", err)
	}
	checkOutage(t, dir, hosted, bundles-removed, bundles-restored, escalateBefore)

	logs := e.Logs()
	if !strings.Contains(logs, "DNS lookups failing") || !strings.Contains(logs, "applications_held=") {
		t.Error("the lifecycle service never warned that DNS lookups were failing")
	}
	t.Logf("the fault run took %v", time.Since(began).Round(time.Second))
}

// checkOutage checks the stopped service's databases in dir. Bundles before index removedFrom
// kept their records; those from restoredFrom on got them back.
func checkOutage(t *testing.T, dir string, hosted []*hostedBundle, removedFrom, restoredFrom int, escalateBefore time.Duration) {
	t.Helper()
	lcDB, caDB := openDB(t, filepath.Join(dir, "lifecycle.db")), openDB(t, filepath.Join(dir, "localca.db"))
	defer lcDB.Close()
	defer caDB.Close()

	type issuance struct{ notBefore, notAfter time.Time }
	issuances := map[string][]issuance{}
	queryRows(t, lcDB, `SELECT bundle_id, not_before, not_after FROM issuances ORDER BY bundle_id, not_before`, func(r *sql.Rows) error {
		var id string
		var nb, na int64
		err := r.Scan(&id, &nb, &na)
		issuances[id] = append(issuances[id], issuance{time.UnixMicro(nb), time.UnixMicro(na)})
		return err
	})
	type supportCase struct {
		urgent   bool
		status   string
		openedAt time.Time
	}
	cases := map[string][]supportCase{}
	queryRows(t, lcDB, `SELECT bundle_id, urgent, status, create_time FROM support_cases`, func(r *sql.Rows) error {
		var id string
		var c supportCase
		var at int64
		err := r.Scan(&id, &c.urgent, &c.status, &at)
		c.openedAt = time.UnixMicro(at)
		cases[id] = append(cases[id], c)
		return err
	})
	type application struct{ status, replaces string }
	renewals := map[string][]application{} // automatic applications, oldest first
	var lcApps []string
	queryRows(t, lcDB, `SELECT bundle_id, application_id, automatic, status, coalesce(replaces_issuance_id, '') FROM applications
		ORDER BY application_id`, func(r *sql.Rows) error {
		var bundle, id, status, replaces string
		var automatic bool
		err := r.Scan(&bundle, &id, &automatic, &status, &replaces)
		lcApps = append(lcApps, id)
		if automatic {
			renewals[bundle] = append(renewals[bundle], application{status, replaces})
		}
		return err
	})
	var caApps []string
	queryRows(t, caDB, `SELECT request_id FROM applications ORDER BY request_id`, func(r *sql.Rows) error {
		var id string
		err := r.Scan(&id)
		caApps = append(caApps, id)
		return err
	})

	expired, retries, keptCases := 0, 0, 0
	for i, b := range hosted {
		iss, cs, apps := issuances[b.id], cases[b.id], renewals[b.id]
		if len(cs) > 1 {
			t.Errorf("bundle %s has %d support cases, want at most one (one incident, one case)", b.id, len(cs))
		}
		for _, a := range apps {
			if a.replaces != b.first {
				t.Errorf("bundle %s: an automatic application replaces %q, want the first certificate %s", b.id, a.replaces, b.first)
			}
			if a.status == "SUBMITTING" || a.status == "PENDING" {
				t.Errorf("bundle %s: an automatic application is still %s", b.id, a.status)
			}
		}
		issued := slices.IndexFunc(apps, func(a application) bool { return a.status == "ISSUED" })
		switch {
		case i < removedFrom || i >= restoredFrom: // records stayed, or came back: never expired
			if len(iss) != 2 || !iss[1].notBefore.Before(iss[0].notAfter) {
				t.Errorf("bundle %s (records in place): issuances %v, want the first and one successor issued before the first expired", b.id, iss)
			}
			if i < removedFrom && (len(apps) != 1 || issued != 0) {
				// The outage is no verdict: the one renewal waited it out and was issued.
				t.Errorf("bundle %s (records in place): automatic applications %v, want the one renewal, issued", b.id, apps)
			}
			if i >= restoredFrom && (issued < 0 || issued != len(apps)-1 || slices.ContainsFunc(apps[:issued], func(a application) bool { return a.status != "REJECTED" })) {
				t.Errorf("bundle %s (record put back): automatic applications %v, want rejected ones, then the one issued", b.id, apps)
			}
			if i >= restoredFrom && (len(cs) != 1 || cs[0].status != "RESOLVED" || len(apps) < 2) {
				t.Errorf("bundle %s (record put back): cases %v, applications %v; want one case, resolved, and a retry that renewed", b.id, cs, apps)
			}
			if i < removedFrom && len(cs) > 0 {
				keptCases++
			}
		default: // records removed for good: expired, after one urgent case opened in time
			expired++
			retries += len(apps) - 1
			if len(iss) != 1 || issued >= 0 || len(apps) < 2 {
				t.Errorf("bundle %s (record removed): issuances %v, applications %v; want the first certificate only, and the renewal retried", b.id, iss, apps)
			}
			if len(cs) != 1 || !cs[0].urgent {
				t.Errorf("bundle %s expired with cases %v, want exactly one urgent case", b.id, cs)
			} else if lead := b.notAfter.Sub(cs[0].openedAt); lead < escalateBefore-time.Second {
				// Less a second: an escalation's case is opened by the tick that runs when
				// escalate_at is due, a moment after it.
				t.Errorf("bundle %s: its case was opened %v before the expiry, want at least escalate_before (%v)", b.id, lead, escalateBefore)
			}
		}
	}
	if !slices.Equal(lcApps, caApps) {
		t.Errorf("the lifecycle service has %d applications and the CA %d; want the same set (one CA application per attempt)", len(lcApps), len(caApps))
	}
	started := map[string]int{}
	queryRows(t, lcDB, `SELECT bundle_id, count(*) FROM events WHERE type = 'renewal_started' GROUP BY bundle_id`, func(r *sql.Rows) error {
		var id string
		var n int
		err := r.Scan(&id, &n)
		started[id] = n
		return err
	})
	for _, b := range hosted {
		if started[b.id] != 1 {
			t.Errorf("bundle %s: %d renewals started, want 1", b.id, started[b.id])
		}
	}
	t.Logf("%d bundles expired with their records removed (%d automatic retries among them); %d of the bundles whose records stayed had a case (a late renewal)",
		expired, retries, keptCases)
}

// queryRows runs q on d and calls scan for each row, failing the test on any error.
func queryRows(t *testing.T, d *sql.DB, q string, scan func(*sql.Rows) error) {
	t.Helper()
	rows, err := d.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// startDevDNS starts (or restarts, on the same address) the development DNS server on the zone
// file, as a process of the pair, and returns its address.
func startDevDNS(t *testing.T, p *pair.Pair, addr, zonePath string) string {
	t.Helper()
	got, err := p.StartProcess(t.Context(), "devdns", bins.DevDNS, "-listen", addr, "-zone", zonePath)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// zoneFile is the DNS server's zone file: a validation record per bundle, some withheld.
type zoneFile struct {
	path string

	mu       sync.Mutex
	lines    map[string]string // bundle id -> its record's line
	withheld map[string]string
}

func (z *zoneFile) set(id, line string) { z.mu.Lock(); defer z.mu.Unlock(); z.lines[id] = line }

func (z *zoneFile) has(id string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	_, ok := z.lines[id]
	return ok
}

// remove withholds a bundle's record; restore publishes it again.
func (z *zoneFile) remove(id string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.withheld == nil {
		z.withheld = map[string]string{}
	}
	z.withheld[id] = z.lines[id]
	delete(z.lines, id)
}

func (z *zoneFile) restore(id string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.lines[id] = z.withheld[id]
	delete(z.withheld, id)
}

// write replaces the zone file at once (a rename), so the server never reads half of it.
func (z *zoneFile) write(t *testing.T) {
	t.Helper()
	z.mu.Lock()
	lines := []string{"$TTL 60"}
	for _, l := range z.lines {
		lines = append(lines, l)
	}
	z.mu.Unlock()
	tmp := z.path + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, z.path); err != nil {
		t.Fatal(err)
	}
}

func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
