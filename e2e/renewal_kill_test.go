package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the services' databases on PostgreSQL
	_ "github.com/mattn/go-sqlite3"    // the services' databases, read-only
	"github.com/miekg/dns"
	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// The lifecycle service is SIGKILLed again and again while hosted certificates are being renewed,
// and restarted each time: every bundle still ends with exactly one successor, and no history
// records a step twice.
//
// The local CA issues 90-second certificates, so a renewal starts 60 s after issuance (with
// renew_before = lifetime/3) and the second round 60 s after that: room for six restarts of a
// race-built service on a slow, shared machine between the first renewals and the second round. The first certificates are
// issued over 8 s (the applications are spread out), so the first renewals fall due over a window
// the kills cover, and the test's DNS server answers the CA's checks slowly, so each renewal is in
// flight for a while. Each kill comes as renewals fall due or right after the API shows one in
// flight; while the service is down the test counts, in its database and the CA's, the renewals
// it left in flight and at which step, and fails if too few kills found any. Once every bundle is
// renewed, and before the second round, the service is stopped gracefully and its history and
// database are checked.
func TestRenewalsSurviveLifecycleKills(t *testing.T) {
	t.Parallel()
	const (
		bundles  = 30
		validity = 90 * time.Second
		spread   = 8 * time.Second // the first issuances, and so the renewals, over this long
		kills    = 6
	)
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: slowDNS{zone}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	dir := t.TempDir()
	e := startWith(t, pair.Options{Dir: dir, LifecycleArgs: []string{
		"-localca-resolver", dnsSrv.Addr(), "-localca-recheck", "1s", "-localca-max-validity", validity.String(),
		"-ticker-interval", "1s",
	}})
	// A connection of the test's own, whose reconnect backoff is reset after each restart, so the
	// test sees the restarted service at once.
	conn := dial(t, e.LifecycleAddr, e.DemoKey)
	lc := lifecyclev1.NewLifecycleServiceClient(conn)

	hosted := map[string]*hostedBundle{}
	for _, b := range hostBundles(t, e, "renew-kill", bundles, spread, func(_ string, r *lifecyclev1.DnsRecord) {
		name := dns.Fqdn(r.GetName())
		zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{r.GetValue()}})
	}) {
		hosted[b.id] = b
	}
	var firstDue, lastDue time.Time
	for _, b := range hosted {
		if firstDue.IsZero() || b.renewAt.Before(firstDue) {
			firstDue = b.renewAt
		}
		if b.renewAt.After(lastDue) {
			lastDue = b.renewAt
		}
	}
	t.Logf("%d bundles hosted; their renewals fall due from %s to %s (in %v)",
		len(hosted), firstDue.Format("15:04:05.000"), lastDue.Format("15:04:05.000"), time.Until(firstDue).Round(time.Millisecond))

	// The kills. The first waits for the first renewal in flight. Each later one comes at least
	// 0.2-1 s after the restart: every other one at the moment renewals fall due (0-40 ms after
	// it: the ticker is starting them, recording their applications and submitting them), the others
	// at the first moment the API shows a renewal in flight (most often at the CA), or 3 s later with
	// none. They stop halfway through the first renewals' window (renew_before = validity/3), which
	// leaves the last renewals time to finish well before their certificates expire, or escalate,
	// on a slow machine.
	made, hits, killsEnd := 0, 0, firstDue.Add(validity/6)
	restarted := time.Now()
	for k := range kills {
		if k > 0 && time.Now().After(killsEnd) {
			t.Logf("no more kills after %d: the first renewals fell due %v ago", k, time.Since(firstDue).Round(time.Millisecond))
			break
		}
		notBefore := restarted.Add(200*time.Millisecond + rand.N(800*time.Millisecond))
		var when string
		if due, ok := nextDue(hosted, notBefore); ok && k%2 == 1 {
			at := due.Add(rand.N(40 * time.Millisecond))
			time.Sleep(time.Until(at))
			when = fmt.Sprintf("%v after renewals fell due", at.Sub(due).Round(time.Millisecond))
		} else {
			giveUp := restarted.Add(3 * time.Second)
			if k == 0 {
				notBefore, giveUp = firstDue, lastDue.Add(3*time.Second)
			}
			when = fmt.Sprintf("right after the API showed %d renewals in flight", waitInFlight(t, lc, notBefore, giveUp))
		}
		e.KillLifecycle()
		made++
		at := renewalsInDB(t, dir)
		if at.inFlight() > 0 {
			hits++
		}
		t.Logf("kill %d, %s: the databases had %v", k+1, when, at)
		if err := e.StartLifecycle(t.Context()); err != nil {
			t.Fatal(err)
		}
		restarted = time.Now()
		conn.ResetConnectBackoff()
	}
	if hits < kills/2 {
		t.Fatalf("only %d of %d kills found a renewal in flight: the renewals went by outside the kills' window", hits, made)
	}

	// Every first renewal completes: instance 1 shows a new current issuance and nothing in flight.
	var secondRound time.Time
	waitFor(t, time.Until(lastDue)+30*time.Second, func() error {
		resp, err := lc.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{PageSize: listPageSize})
		if err != nil {
			return err
		}
		waiting := 0
		secondRound = time.Time{}
		for _, b := range resp.GetBundles() {
			c := instance1(b)
			if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED {
				a := c.GetCurrentApplication()
				t.Fatalf("bundle %s instance 1 is %v, application %s %v: %s", b.GetBundleId(), c.GetState(),
					a.GetApplicationId(), a.GetStatus(), a.GetRejectionMessage())
			}
			if c.GetCurrentIssuance().GetIssuanceId() == hosted[b.GetBundleId()].first || inFlight(c) || c.GetRenewTime() == nil {
				waiting++
				continue
			}
			if due := c.GetRenewTime().AsTime(); secondRound.IsZero() || due.Before(secondRound) {
				secondRound = due
			}
		}
		if waiting > 0 {
			return fmt.Errorf("%d of %d bundles not renewed yet", waiting, len(resp.GetBundles()))
		}
		return nil
	})
	t.Logf("every bundle renewed; the second round begins at %s, in %v",
		secondRound.Format("15:04:05.000"), time.Until(secondRound).Round(time.Millisecond))

	// What the API shows, read before the second round.
	for id, b := range hosted {
		checkRenewedOnce(t, lc, id, b)
	}
	if err := e.StopLifecycle(); err != nil {
		t.Fatalf("stopping the lifecycle service: %v", err)
	}
	if stopped := time.Now(); !stopped.Before(secondRound) {
		t.Fatalf("the lifecycle service stopped at %s, after the second round of renewals began (%s): "+
			"the machine is too slow for %v certificates; make them longer", stopped.Format("15:04:05.000"),
			secondRound.Format("15:04:05.000"), validity)
	}
	checkRenewalDB(t, filepath.Join(dir, "lifecycle.db"), filepath.Join(dir, "localca.db"), hosted)
}

// slowDNS answers from its source after 0.1-0.5 s, as a real DNS check takes a while: renewals
// then stay in flight long enough for a kill to find some.
type slowDNS struct{ dnsserver.Source }

func (s slowDNS) Lookup(name string, qtype uint16) ([]dns.RR, bool) {
	time.Sleep(100*time.Millisecond + rand.N(400*time.Millisecond))
	return s.Source.Lookup(name, qtype)
}

// hostedBundle is one bundle of a renewal test once its first certificate is hosted.
type hostedBundle struct {
	id       string
	cert     string    // instance 1
	others   []string  // instances 2 and 3
	first    string    // instance 1's first issuance
	renewAt  time.Time // when its renewal falls due
	notAfter time.Time // when its first certificate expires
}

// hostBundles buys n hosted 3-year bundles (request ids prefix-00, prefix-01...), applies for each
// (the applications spread over spread, which staggers the renewals), has publish put each
// bundle's TXT record in the DNS the local CA asks (it stays there: every renewal of the bundle is
// validated with the same record), and waits until all of them are HOSTED. It returns them in
// purchase order.
func hostBundles(t *testing.T, e *env, prefix string, n int, spread time.Duration,
	publish func(bundleID string, record *lifecyclev1.DnsRecord)) []*hostedBundle {
	t.Helper()
	var orders []string
	for i := range n {
		o := e.create(t, orderRequest(fmt.Sprintf("%s-%02d", prefix, i), 3, true))
		e.pay(t, o.GetOrderId(), "pay-"+o.GetOrderId())
		orders = append(orders, o.GetOrderId())
	}
	out := make([]*hostedBundle, 0, n)
	byID := map[string]*hostedBundle{}
	start := time.Now()
	for i, id := range orders {
		o := e.delivered(t, id)
		resp, err := e.lifecycle.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: o.GetBundleId()})
		if err != nil {
			t.Fatalf("GetBundle(%s): %v", o.GetBundleId(), err)
		}
		b := &hostedBundle{id: o.GetBundleId()}
		for _, c := range resp.GetBundle().GetCertificates() {
			if c.GetSequence() == 1 {
				b.cert = c.GetCertificateId()
			} else {
				b.others = append(b.others, c.GetCertificateId())
			}
		}
		out, byID[b.id] = append(out, b), b
		time.Sleep(time.Until(start.Add(time.Duration(i) * spread / time.Duration(n))))
		domain := fmt.Sprintf("shop%02d.example.com", i)
		sub, err := e.lifecycle.SubmitApplication(t.Context(), &lifecyclev1.SubmitApplicationRequest{
			CertificateId: b.cert, Domains: []string{domain}, Contact: &lifecyclev1.Contact{Email: "ops@example.com"},
		})
		if err != nil {
			t.Fatalf("SubmitApplication(%s): %v", domain, err)
		}
		if len(sub.GetInstructions()) != 1 {
			t.Fatalf("SubmitApplication(%s) asks for %d records, want 1", domain, len(sub.GetInstructions()))
		}
		publish(b.id, sub.GetInstructions()[0])
	}

	waitFor(t, 30*time.Second, func() error {
		resp, err := e.lifecycle.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{PageSize: listPageSize})
		if err != nil {
			return err
		}
		waiting := 0
		for _, bp := range resp.GetBundles() {
			c, b := instance1(bp), byID[bp.GetBundleId()]
			if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED || c.GetRenewTime() == nil {
				waiting++
				continue
			}
			b.first, b.renewAt, b.notAfter = c.GetCurrentIssuance().GetIssuanceId(), c.GetRenewTime().AsTime(),
				c.GetCurrentIssuance().GetNotAfter().AsTime()
		}
		if waiting > 0 {
			return fmt.Errorf("%d of %d bundles not HOSTED yet", waiting, len(resp.GetBundles()))
		}
		return nil
	})
	return out
}

// nextDue is the first time at or after t when some bundles' first renewals fall due.
func nextDue(hosted map[string]*hostedBundle, t time.Time) (time.Time, bool) {
	var next time.Time
	for _, b := range hosted {
		if !b.renewAt.Before(t) && (next.IsZero() || b.renewAt.Before(next)) {
			next = b.renewAt
		}
	}
	return next, !next.IsZero()
}

// inFlight says whether an instance has an automatic application (a renewal) not decided yet.
func inFlight(c *lifecyclev1.Certificate) bool {
	a := c.GetCurrentApplication()
	return a.GetAutomatic() && (a.GetStatus() == lifecyclev1.ApplicationStatus_APPLICATION_STATUS_SUBMITTING ||
		a.GetStatus() == lifecyclev1.ApplicationStatus_APPLICATION_STATUS_PENDING)
}

// waitInFlight polls the bundles until, at notBefore or later, at least one renewal is in flight,
// and returns how many are; at giveUp it returns 0.
func waitInFlight(t *testing.T, lc lifecyclev1.LifecycleServiceClient, notBefore, giveUp time.Time) int {
	t.Helper()
	time.Sleep(time.Until(notBefore))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(giveUp) {
		resp, err := lc.ListBundles(t.Context(), &lifecyclev1.ListBundlesRequest{PageSize: listPageSize}, grpc.WaitForReady(true))
		if err == nil {
			n := 0
			for _, b := range resp.GetBundles() {
				if inFlight(instance1(b)) {
					n++
				}
			}
			if n > 0 {
				return n
			}
		}
		<-tick.C
	}
	return 0
}

// renewalCounts is where the bundles' renewals stand in the databases of a stopped service: the
// lifecycle's (each bundle's renewal_application_id, by the step that application reached) and
// the local CA's (whether it has the application, and issued it).
type renewalCounts struct {
	recorded  int // SUBMITTING, no key yet
	keyed     int // SUBMITTING, its key stored, the CA has not heard of it
	submitted int // SUBMITTING, the CA has it, its answer not recorded
	atCA      int // PENDING, the CA has not issued it yet
	issued    int // PENDING, the CA issued it, the certificate not recorded
	done      int // renewals issued and recorded
}

func (r renewalCounts) inFlight() int { return r.recorded + r.keyed + r.submitted + r.atCA + r.issued }

func (r renewalCounts) String() string {
	return fmt.Sprintf("%d renewals in flight (%d recorded, %d with their key stored, %d at the CA with its answer not recorded, "+
		"%d pending at the CA, %d issued by the CA and not recorded) and %d done",
		r.inFlight(), r.recorded, r.keyed, r.submitted, r.atCA, r.issued, r.done)
}

// openDB opens one of the services' SQLite databases read-only. A read-only connection never
// checkpoints or deletes the WAL, so reading a database between a kill and the restart leaves the
// database and its WAL as the killed process did (only the shared-memory index, which every
// opener rebuilds, is touched).
// openDB opens a service's database to read it: a SQLite file (read-only), or a postgres:// URL.
func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	if strings.HasPrefix(path, "postgres://") {
		d, err := sql.Open("pgx", path)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// renewalsInDB counts where the renewals stand, in the databases in dir of a stopped lifecycle
// service.
func renewalsInDB(t *testing.T, dir string) renewalCounts {
	t.Helper()
	lcDB, caDB := openDB(t, filepath.Join(dir, "lifecycle.db")), openDB(t, filepath.Join(dir, "localca.db"))
	defer lcDB.Close()
	defer caDB.Close()
	var r renewalCounts
	rows, err := lcDB.Query(`SELECT a.application_id, a.status, a.key_sealed IS NOT NULL FROM bundles b
		JOIN applications a ON a.application_id = b.renewal_application_id`)
	if err != nil {
		t.Fatalf("reading the lifecycle database: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, status string
		var keyed bool
		if err := rows.Scan(&id, &status, &keyed); err != nil {
			t.Fatal(err)
		}
		var atCA string // the CA's state of the application, "" when it has none
		if err := caDB.QueryRow(`SELECT state FROM applications WHERE request_id = ?`, id).Scan(&atCA); err != nil && err != sql.ErrNoRows {
			t.Fatalf("reading the local CA's database: %v", err)
		}
		switch {
		case status == "PENDING" && atCA == "ISSUED":
			r.issued++
		case status == "PENDING":
			r.atCA++
		case atCA != "":
			r.submitted++
		case keyed:
			r.keyed++
		default:
			r.recorded++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := lcDB.QueryRow(`SELECT count(*) FROM applications WHERE automatic AND status = 'ISSUED'`).Scan(&r.done); err != nil {
		t.Fatal(err)
	}
	return r
}

// checkRenewedOnce checks through the API that a bundle's first renewal happened once: instance 1
// HOSTED with a new certificate, its history the first issuance and one renewal with nothing
// repeated, and instances 2 and 3 untouched (a re-issue activates nothing).
func checkRenewedOnce(t *testing.T, lc lifecyclev1.LifecycleServiceClient, bundleID string, b *hostedBundle) {
	t.Helper()
	resp, err := lc.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: bundleID})
	if err != nil {
		t.Fatalf("GetBundle(%s): %v", bundleID, err)
	}
	for _, c := range resp.GetBundle().GetCertificates() {
		if c.GetSequence() == 1 {
			if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED || c.GetCurrentIssuance() == nil ||
				c.GetCurrentIssuance().GetIssuanceId() == b.first {
				t.Errorf("bundle %s instance 1: %v with issuance %s, want HOSTED with a successor of %s",
					bundleID, c.GetState(), c.GetCurrentIssuance().GetIssuanceId(), b.first)
			}
		} else if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED {
			t.Errorf("bundle %s instance %d: %v, want NOT_ACTIVATED", bundleID, c.GetSequence(), c.GetState())
		}
	}
	want := map[string][]string{b.cert: {
		"CREATED(UNSPECIFIED→PENDING_APPLICATION)", "APPLICATION_SUBMITTED(PENDING_APPLICATION→VALIDATING)",
		"ISSUED(VALIDATING→VALIDATING)", "HOSTED(VALIDATING→HOSTED)",
		"RENEWAL_STARTED(HOSTED→HOSTED)", "ISSUED(HOSTED→HOSTED)",
	}}
	for _, id := range b.others {
		want[id] = []string{"CREATED(UNSPECIFIED→NOT_ACTIVATED)"}
	}
	for id, want := range want {
		got := history(t, lc, id)
		// A renewal slowed down past escalate_before opens a case, and one not done by the first
		// expiry reminder threshold (at the renewal time itself for these short certificates)
		// sends a reminder: worth knowing, not wrong.
		got = slices.DeleteFunc(got, func(s string) bool {
			if strings.HasPrefix(s, "SUPPORT_CASE_OPENED(") {
				t.Logf("bundle %s certificate %s: a support case was opened (a late renewal)", bundleID, id)
				return true
			}
			if strings.HasPrefix(s, "EXPIRY_REMINDER(") {
				t.Logf("bundle %s certificate %s: an expiry reminder was sent (the renewal was not done yet)", bundleID, id)
				return true
			}
			return false
		})
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				t.Errorf("bundle %s certificate %s: %s twice in a row", bundleID, id, got[i])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("bundle %s certificate %s history:\n got %v\nwant %v", bundleID, id, got, want)
		}
	}
}

// history is an instance's lifecycle events as TYPE(FROM→TO).
func history(t *testing.T, lc lifecyclev1.LifecycleServiceClient, certID string) []string {
	t.Helper()
	var out []string
	req := &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: certID, PageSize: listPageSize}
	for {
		resp, err := lc.GetCertificateLifecycle(t.Context(), req)
		if err != nil {
			t.Fatalf("GetCertificateLifecycle(%s): %v", certID, err)
		}
		for _, ev := range resp.GetEvents() {
			out = append(out, fmt.Sprintf("%s(%s→%s)", strings.TrimPrefix(ev.GetType().String(), "EVENT_TYPE_"),
				strings.TrimPrefix(ev.GetFromState().String(), "CERTIFICATE_STATE_"),
				strings.TrimPrefix(ev.GetToState().String(), "CERTIFICATE_STATE_")))
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			return out
		}
	}
}

// checkRenewalDB checks in the databases of the stopped service (lifecycle and local CA; files or
// URLs) what the API cannot show:
// each bundle has two issuances and one automatic application, which replaces the first issuance
// and is decided; no renewal is left in flight; no event is recorded twice; and the CA was asked
// for, and issued, two certificates per bundle, however often a kill cut a renewal short.
func checkRenewalDB(t *testing.T, lifecycleDB, caDBPath string, hosted map[string]*hostedBundle) {
	t.Helper()
	d := openDB(t, lifecycleDB)
	defer d.Close()
	query := func(q string, scan func(*sql.Rows) error) { t.Helper(); queryRows(t, d, q, scan) }

	issuances := map[string]int{}
	query(`SELECT bundle_id, count(*) FROM issuances GROUP BY bundle_id`, func(r *sql.Rows) error {
		var id string
		var n int
		err := r.Scan(&id, &n)
		issuances[id] = n
		return err
	})
	successors := map[string][]string{} // bundle -> its automatic applications, "id replaces status"
	query(`SELECT bundle_id, application_id, coalesce(replaces_issuance_id, ''), status FROM applications
		WHERE automatic ORDER BY application_id`, func(r *sql.Rows) error {
		var bundle, app, replaces, status string
		err := r.Scan(&bundle, &app, &replaces, &status)
		successors[bundle] = append(successors[bundle], fmt.Sprintf("%s replaces %q, %s", app, replaces, status))
		return err
	})
	for id, b := range hosted {
		if issuances[id] != 2 {
			t.Errorf("bundle %s has %d issuances, want 2", id, issuances[id])
		}
		want := fmt.Sprintf("replaces %q, ISSUED", b.first)
		if got := successors[id]; len(got) != 1 || !strings.HasSuffix(got[0], want) {
			t.Errorf("bundle %s automatic applications: %q; want one that %s", id, got, want)
		}
	}
	if len(issuances) != len(hosted) || len(successors) != len(hosted) {
		t.Errorf("issuances of %d bundles and automatic applications of %d, want %d each", len(issuances), len(successors), len(hosted))
	}

	query(`SELECT application_id, bundle_id, status FROM applications WHERE status IN ('SUBMITTING', 'PENDING')`, func(r *sql.Rows) error {
		var app, bundle, status string
		err := r.Scan(&app, &bundle, &status)
		t.Errorf("application %s of bundle %s is still %s", app, bundle, status)
		return err
	})
	query(`SELECT bundle_id, renewal_application_id FROM bundles WHERE renewal_application_id IS NOT NULL`, func(r *sql.Rows) error {
		var bundle, app string
		err := r.Scan(&bundle, &app)
		t.Errorf("bundle %s still has renewal %s in flight", bundle, app)
		return err
	})
	query(`SELECT certificate_id, type, from_state, to_state, time, count(*) FROM events
		GROUP BY certificate_id, type, from_state, to_state, time HAVING count(*) > 1`, func(r *sql.Rows) error {
		var cert, typ, from, to string
		var at int64
		var n int
		err := r.Scan(&cert, &typ, &from, &to, &at, &n)
		t.Errorf("certificate %s: event %s (%s→%s) recorded %d times at %d", cert, typ, from, to, n, at)
		return err
	})
	caDB := openDB(t, caDBPath)
	defer caDB.Close()
	var caApps, caCerts int
	if err := caDB.QueryRow(`SELECT (SELECT count(*) FROM applications), (SELECT count(*) FROM certificates)`).Scan(&caApps, &caCerts); err != nil {
		t.Fatal(err)
	}
	if caApps != 2*len(hosted) || caCerts != 2*len(hosted) {
		t.Errorf("the CA has %d applications and issued %d certificates, want %d of each", caApps, caCerts, 2*len(hosted))
	}

	var cases int
	if err := d.QueryRow(`SELECT count(*) FROM support_cases`).Scan(&cases); err != nil {
		t.Fatal(err)
	}
	if cases > 0 {
		t.Logf("%d support cases were opened (renewals late past escalate_before)", cases)
	}
}

// instance1 is a bundle's first instance.
func instance1(b *lifecyclev1.Bundle) *lifecyclev1.Certificate {
	for _, c := range b.GetCertificates() {
		if c.GetSequence() == 1 {
			return c
		}
	}
	return nil
}
