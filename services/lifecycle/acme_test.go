package lifecycle_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme/api"
	"github.com/jonboulle/clockwork"
	"github.com/miekg/dns"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/internal/pebbletest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// acmeZone is the delegated zone of the ACME tests: customers point their _acme-challenge CNAMEs
// into it, and the lifecycle service answers it from its own database.
const acmeZone = "acme.certhosting.test"

// acmeCNAMETimeout is how long (fake time) an ACME application waits for its customer's CNAME
// before it is rejected. Shorter than the default hour, so that a test waiting it out ticks through
// tens of polls, not hundreds.
const acmeCNAMETimeout = 5 * time.Minute

// acmeCA is the ACME side of an env made with envOptions.acme, wired as certhosting-lifecycle wires
// an ACME CA (cmd/certhosting-lifecycle/cas.go): Pebble and pebble-challtestsrv as processes on
// loopback, challtestsrv being the customers' DNS; the lifecycle's DelegatedZone on the env's store,
// served by a pkg/dnsserver on loopback, to which Pebble's resolver delegates the zone; and an ACME
// client on Pebble with the zone as its Challenges, the env's fake clock, and challtestsrv as its
// CNAME resolver, so that a first application waits for the customer's CNAME.
type acmeCA struct {
	pebble *pebbletest.Pebble
	zone   *lifecycle.DelegatedZone
	client *acme.Client
	log    *logRecorder // what the client logged
}

func startACME(t *testing.T, st *store.Store, clk clockwork.Clock, box *secrets.Box) *acmeCA {
	t.Helper()
	zone, err := lifecycle.NewDelegatedZone(st, clk, grpctest.Logger(t), acmeZone, "ns1.certhosting.test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	// No authorization is reused (Pebble is asked not to, and the client deactivates those of each
	// issued order, because Pebble still reuses one in a hundred), so every order, renewals
	// included, is validated afresh through the delegation. Pebble's fault injection (rejected
	// nonces, validation delays) stays on.
	p := pebbletest.Start(t, pebbletest.Options{NoAuthzReuse: true, Delegations: map[string]string{acmeZone: srv.Addr()}})
	rec := &logRecorder{records: &recorded{}}
	client, err := acme.Open(context.Background(), acme.Config{
		DirectoryURL: p.DirectoryURL, Email: "ops@certhosting.test", RootCAs: p.TLSRootPEM, NoSystemRoots: true,
		Profile: "default", DBPath: dbtest.URLIn(t, dbtest.FromEnv(t), t.TempDir(), "acme.db"), Box: box, Challenges: zone, Zone: zone.Zone(),
		Clock: clk, CNAMEResolver: p.ChallSrv.DNSAddr, CNAMETimeout: acmeCNAMETimeout, RelinquishAuthorizations: true,
		Logger: slog.New(slog.NewMultiHandler(grpctest.Logger(t).Handler(), rec)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &acmeCA{pebble: p, zone: zone, client: client, log: rec}
}

// registry routes DV products to the ACME CA and everything else to local, as a -ca-config with
// the routes {"DV": "pebble", "*": "local"} does.
func (a *acmeCA) registry(t *testing.T, local ca.Client) *ca.Registry {
	t.Helper()
	reg, err := ca.NewRegistry(map[string]ca.Client{"local": local, "pebble": a.client},
		map[string]string{"DV": "pebble", "*": "local"})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// published are the DNS-01 values the delegated zone holds at name.
func (a *acmeCA) published(name string) []string {
	rrs, _ := a.zone.Lookup(name, dns.TypeTXT)
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.(*dns.TXT).Txt...)
	}
	return out
}

// replaces lists the replaces of the orders Pebble created (RFC 9773 certificate ids, as Pebble's
// answer to new-order echoed them), in order, from the client's log; orders naming none are left out.
func (a *acmeCA) replaces() []string {
	var out []string
	for _, r := range a.log.find("order created") {
		if r.attrs["replaces"] != "" {
			out = append(out, r.attrs["replaces"])
		}
	}
	return out
}

// logRecorder is a slog.Handler that keeps the records (info and above) of a component, for
// assertions on what it reported.
type logRecorder struct {
	records *recorded
	attrs   []slog.Attr
}

type recorded struct {
	mu   sync.Mutex
	list []loggedRecord
}

// loggedRecord is one record: its message and its attributes as strings.
type loggedRecord struct {
	msg   string
	attrs map[string]string
}

func (r *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	lr := loggedRecord{msg: rec.Message, attrs: map[string]string{}}
	for _, a := range r.attrs {
		lr.attrs[a.Key] = a.Value.String()
	}
	rec.Attrs(func(a slog.Attr) bool {
		lr.attrs[a.Key] = a.Value.String()
		return true
	})
	r.records.mu.Lock()
	defer r.records.mu.Unlock()
	r.records.list = append(r.records.list, lr)
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logRecorder{records: r.records, attrs: append(slices.Clip(r.attrs), attrs...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// find returns the records with message msg, in order.
func (r *logRecorder) find(msg string) []loggedRecord {
	r.records.mu.Lock()
	defer r.records.mu.Unlock()
	var out []loggedRecord
	for _, lr := range r.records.list {
		if lr.msg == msg {
			out = append(out, lr)
		}
	}
	return out
}

// until ticks the service until done holds, the way the real ticker runs against a CA that works
// in real time: each round ticks at the fake clock's now, then moves the clock on to the next
// moment work falls due (the CA's suggested retry; at least a second, at most a minute) so that the
// due poll runs, and gives the CA a moment of real time. It fails the test when done does not hold
// within limit (real time), and returns how many rounds it took.
func (e *env) until(what string, limit time.Duration, done func() bool) int {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	for round := 1; ; round++ {
		e.tick()
		if done() {
			return round
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not done after %s of real time (%d rounds; fake clock at %s)", what, limit, round, e.clk.Now())
		}
		step := time.Second
		next, ok, err := e.st.NextDue(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if ok {
			step = min(max(next.Sub(e.clk.Now()), time.Second), time.Minute)
		}
		e.clk.Advance(step)
		time.Sleep(min(step, 250*time.Millisecond)) // pacing only: Pebble validates in real time
	}
}

// awaitHosted ticks until the instance is HOSTED with an issuance other than previous ("" for the
// first), and returns it.
func (e *env) awaitHosted(what, certID, previous string) *lifecyclev1.Certificate {
	e.t.Helper()
	var c *lifecyclev1.Certificate
	rounds := e.until(what, 3*time.Minute, func() bool {
		c = e.certificate(certID)
		id := c.GetCurrentIssuance().GetIssuanceId()
		return c.GetState() == stHosted && id != "" && id != previous
	})
	e.t.Logf("%s: hosted after %d rounds", what, rounds)
	return c
}

// stopwatch logs the steps of a long test with their real and fake durations.
type stopwatch struct {
	t                     *testing.T
	clk                   clockwork.Clock
	real, fake, t0, fake0 time.Time
}

func newStopwatch(t *testing.T, clk clockwork.Clock) *stopwatch {
	now := time.Now()
	return &stopwatch{t: t, clk: clk, real: now, fake: clk.Now(), t0: now, fake0: clk.Now()}
}

func (s *stopwatch) step(what string) {
	s.t.Helper()
	now, fake := time.Now(), s.clk.Now()
	moved := fake.Sub(s.fake).Round(time.Second).String()
	if fake.Sub(s.fake) >= day {
		moved = fmt.Sprintf("%.2f days", days(s.fake, fake))
	}
	s.t.Logf("%-55s %5.1fs real (%5.1fs in all); fake clock +%s, at day %.2f", what, now.Sub(s.real).Seconds(),
		now.Sub(s.t0).Seconds(), moved, days(s.fake0, fake))
	s.real, s.fake = now, fake
}

// ariCertID is the RFC 9773 id of a certificate, as an order names it in replaces.
func ariCertID(t *testing.T, leaf *x509.Certificate) string {
	t.Helper()
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestACMEHostedSubscription is the ACME path end to end, against Pebble with its fault injection
// on: a customer buys a 2-year hosted DV subscription through the order service, gets the first
// certificate through DNS-01 via the one CNAME the instructions name, and the service renews it with
// the clock moved forward and no customer action, through the same CNAME, naming the certificate it
// replaces. Every chain verifies against Pebble's root. Then the customer removes the CNAME, and the
// next renewal fails into an urgent DNS support case while the certificate in use stays valid;
// with the CNAME back, the customer's retry is hosted (naming the certificate it replaces too) and
// the case resolves.
//
// Pebble works in real time and dates certificates by the real clock, while the service's clock is
// fake: the test ticks with a real deadline, moving the fake clock on by the suggested retries (see
// until). Because every certificate Pebble issues starts at the real now, a renewed certificate
// falls due for renewal about when its predecessor did, which the fake clock has already reached;
// the test makes Pebble move the second certificate's renewal window later (its management API
// forces ARI answers), which the service follows, as it would a real CA's moved window.
func TestACMEHostedSubscription(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: four orders to Pebble, in real time with its validation delays")
	}
	t.Parallel()
	e := newEnv(t, envOptions{acme: true})
	p := e.acme.pebble
	ctx := t.Context()
	watch := newStopwatch(t, e.clk)
	const domain = "shop.example.com"
	const challengePOST = "POST /chalZ/"      // Pebble logs each challenge request so
	const replacement = "is a replacement of" // Pebble logs each new-order naming a certificate it replaces

	// The purchase, through the order service and its relay.
	b := e.purchase(e.startOrders(), "dv-single", 1, 2, true)
	if n := len(b.GetCertificates()); n != 2 || !b.GetHosting() {
		t.Fatalf("bundle of the 2-year hosted order: %d instances, hosting %v; want 2, hosted", n, b.GetHosting())
	}
	certID := b.GetCertificates()[0].GetCertificateId()
	watch.step("bought: CreateOrder, PayOrder, relay sweep")

	// The first application: its instructions are one CNAME into the delegated zone.
	sub := e.submit(&lifecyclev1.SubmitApplicationRequest{
		CertificateId: certID, Domains: []string{domain}, Contact: &lifecyclev1.Contact{Email: "ops@example.com"},
	})
	want := acme.Delegation(acmeZone, b.GetBundleId(), domain)
	if got := sub.GetInstructions(); len(got) != 1 || got[0].GetType() != "CNAME" || got[0].GetName() != "_acme-challenge."+domain ||
		got[0].GetValue() != want.Value || !strings.HasSuffix(want.Value, "."+acmeZone) {
		t.Fatalf("instructions = %v; want one CNAME _acme-challenge.%s → %s", got, domain, want.Value)
	}
	cname := sub.GetInstructions()[0]
	// Until the customer publishes it, no challenge is accepted: the instance waits.
	e.tick()
	e.clk.Advance(15 * time.Second)
	e.tick()
	if got := e.certificate(certID).GetState(); got != stValidating {
		t.Fatalf("before the CNAME the instance is %s, want VALIDATING", got)
	}
	if n := p.Count(challengePOST); n != 0 {
		t.Fatalf("%d challenge requests to Pebble before the CNAME was published, want none", n)
	}
	watch.step("submitted; waiting for the customer's CNAME")

	// The customer publishes the CNAME, once. The first certificate is issued and hosted.
	if err := p.ChallSrv.SetCNAME(ctx, cname.GetName(), cname.GetValue()); err != nil {
		t.Fatal(err)
	}
	first := e.awaitHosted("first certificate", certID, "")
	chain1 := first.GetCurrentIssuance().GetCertificateChainPem()
	leaf1 := verifyChainAt(t, p.Roots(), chain1, e.clk.Now())
	if !slices.Equal(leaf1.DNSNames, []string{domain}) || leaf1.NotAfter.Sub(leaf1.NotBefore) < 89*day {
		t.Errorf("first certificate: names %v, valid %s → %s; want [%s], Pebble's 90-day default profile",
			leaf1.DNSNames, leaf1.NotBefore, leaf1.NotAfter, domain)
	}
	t0 := leaf1.NotBefore
	if got := e.bundle(b.GetBundleId()).GetFirstIssueTime().AsTime(); !got.Equal(t0) {
		t.Errorf("bundle first_issue_time = %s, want the first certificate's not_before %s", got, t0)
	}
	if got := e.acme.published(cname.GetValue()); len(got) != 0 {
		t.Errorf("the delegated zone still holds %q at %s after the order was decided; want nothing", got, cname.GetValue())
	}
	challenges := p.AwaitCount(challengePOST, 1)
	if challenges == 0 {
		t.Error("Pebble got no challenge request for the first certificate")
	}
	watch.step("first certificate hosted (DNS-01 through the CNAME)")

	// Right after issuance the service asks Pebble for the renewal window (ARI), and plans the
	// renewal inside it.
	const ariGET = "GET /draft-ietf-acme-ari-03/renewalInfo/"
	e.tick()
	if n := p.AwaitCount(ariGET, 1); n == 0 {
		t.Fatal("the service did not ask Pebble for the first certificate's renewal window")
	}
	wStart, wEnd, err := p.RenewalWindow(ctx, []byte(chain1))
	if err != nil {
		t.Fatal(err)
	}
	renew := e.certificate(certID).GetRenewTime().AsTime()
	if renew.Before(wStart) || renew.After(wEnd) {
		t.Fatalf("renew_time = day %.2f, want inside Pebble's window [day %.2f, day %.2f]",
			days(t0, renew), days(t0, wStart), days(t0, wEnd))
	}
	t.Logf("first certificate: valid days 0 → %.2f, Pebble's window [%.2f, %.2f], renewal at day %.2f",
		days(t0, leaf1.NotAfter), days(t0, wStart), days(t0, wEnd), days(t0, renew))

	// The clock moves to the renewal; the service renews with no customer action, through the
	// same CNAME, naming the certificate it replaces.
	e.clk.Advance(renew.Sub(e.clk.Now()))
	watch.step("clock moved to the renewal time")
	second := e.awaitHosted("renewal", certID, first.GetCurrentIssuance().GetIssuanceId())
	chain2 := second.GetCurrentIssuance().GetCertificateChainPem()
	leaf2 := verifyChainAt(t, p.Roots(), chain2, e.clk.Now())
	if !slices.Equal(leaf2.DNSNames, []string{domain}) || leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 {
		t.Errorf("renewed certificate: names %v, serial %x; want [%s] and a new serial (the first: %x)",
			leaf2.DNSNames, leaf2.SerialNumber, domain, leaf1.SerialNumber)
	}
	if samePublicKey(leaf1.PublicKey, leaf2.PublicKey) {
		t.Error("the renewed certificate reuses the first certificate's key")
	}
	if app := second.GetCurrentApplication(); !app.GetAutomatic() || !slices.Equal(app.GetDomains(), []string{domain}) {
		t.Errorf("renewal application: automatic %v, domains %v; want automatic, [%s]", app.GetAutomatic(), app.GetDomains(), domain)
	}
	if n := p.AwaitCount(challengePOST, challenges+1); n <= challenges {
		t.Errorf("Pebble got no challenge request for the renewal (%d in all); want it validated afresh through the CNAME", n)
	}
	challenges = p.Count(challengePOST)
	// The renewal's order named the first certificate (RFC 9773 replaces): Pebble accepted it as a
	// replacement, and the order it created says so.
	if n := p.AwaitCount(replacement, 1); n != 1 {
		t.Errorf("Pebble logged %d replacement orders, want 1", n)
	}
	if got, want := e.acme.replaces(), []string{ariCertID(t, leaf1)}; !slices.Equal(got, want) {
		t.Errorf("orders Pebble created with replaces: %q; want %q, naming the first certificate", got, want)
	}
	if n := len(e.acme.log.find("order refused with replaces; ordering without it")); n != 0 {
		t.Errorf("%d orders were refused with replaces, want none", n)
	}
	if got := e.states(b.GetBundleId()); got[0] != stHosted || got[1] != stNotActive {
		t.Errorf("instance states %v; want instance 1 HOSTED (re-issued inside its year), instance 2 NOT_ACTIVATED", got)
	}
	if got := e.acme.published(cname.GetValue()); len(got) != 0 {
		t.Errorf("the delegated zone still holds %q after the renewal; want nothing", got)
	}
	watch.step("renewed certificate hosted (no customer action)")

	// The customer removes the CNAME. Pebble moves the renewed certificate's window ten days on,
	// and the service follows it.
	if err := p.ChallSrv.ClearCNAME(ctx, cname.GetName()); err != nil {
		t.Fatal(err)
	}
	forcedStart := e.clk.Now().Add(10 * day).Truncate(time.Second)
	forcedEnd := forcedStart.Add(day)
	if err := p.SetRenewalInfo(ctx, []byte(chain2), forcedStart, forcedEnd, ""); err != nil {
		t.Fatal(err)
	}
	e.tick()
	renew = e.certificate(certID).GetRenewTime().AsTime()
	if renew.Before(forcedStart) || renew.After(forcedEnd) {
		t.Fatalf("renew_time = day %.2f, want inside Pebble's window for the renewed certificate [day %.2f, day %.2f]",
			days(t0, renew), days(t0, forcedStart), days(t0, forcedEnd))
	}
	e.clk.Advance(renew.Sub(e.clk.Now()))
	watch.step("CNAME removed; clock moved to the next renewal time")
	var failed *lifecyclev1.Certificate
	rounds := e.until("renewal without the CNAME", 3*time.Minute, func() bool {
		failed = e.certificate(certID)
		return failed.GetRenewalStatus() == lifecyclev1.RenewalStatus_RENEWAL_STATUS_FAILED
	})
	if failed.GetState() != stHosted {
		t.Errorf("after the failed renewal the instance is %s, want HOSTED: its certificate is still in use", failed.GetState())
	}
	t.Logf("renewal without the CNAME: failed after %d rounds", rounds)
	app := failed.GetCurrentApplication()
	if app.GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_REJECTED || !app.GetAutomatic() ||
		app.GetRejectionReason() != lifecyclev1.RejectionReason_REJECTION_REASON_DNS ||
		!strings.Contains(app.GetRejectionMessage(), cname.GetName()) || !strings.Contains(app.GetRejectionMessage(), cname.GetValue()) {
		t.Errorf("failed renewal: %s automatic=%v %s %q; want an automatic application REJECTED for DNS naming %s → %s",
			app.GetStatus(), app.GetAutomatic(), app.GetRejectionReason(), app.GetRejectionMessage(), cname.GetName(), cname.GetValue())
	}
	cases := e.cases(e.support)
	if len(cases) != 1 {
		t.Fatalf("support sees %d cases, want 1", len(cases))
	}
	if sc := cases[0]; sc.GetKind() != lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_VALIDATION_FAILED || !sc.GetUrgent() ||
		sc.GetRejectionReason() != lifecyclev1.RejectionReason_REJECTION_REASON_DNS || sc.GetCertificateId() != certID ||
		sc.GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_OPEN {
		t.Errorf("case = %v; want an open, urgent VALIDATION_FAILED case for %s with reason DNS", sc, certID)
	}
	// The certificate in use is still the renewed one, valid now.
	if got := failed.GetCurrentIssuance().GetIssuanceId(); got != second.GetCurrentIssuance().GetIssuanceId() {
		t.Errorf("current issuance after the failed renewal = %s, want the renewed certificate's %s", got, second.GetCurrentIssuance().GetIssuanceId())
	}
	verifyChainAt(t, p.Roots(), failed.GetCurrentIssuance().GetCertificateChainPem(), e.clk.Now())
	// Pebble never validated: the client waited for the CNAME. The order did name the certificate it
	// would have replaced.
	if n := p.Count(challengePOST); n != challenges {
		t.Errorf("%d challenge requests during the renewal without the CNAME, want none", n-challenges)
	}
	if n := p.AwaitCount(replacement, 2); n != 2 {
		t.Errorf("Pebble logged %d replacement orders in all, want 2", n)
	}
	if got, want := e.acme.replaces(), []string{ariCertID(t, leaf1), ariCertID(t, leaf2)}; !slices.Equal(got, want) {
		t.Errorf("orders Pebble created with replaces: %q; want %q, naming the first and the renewed certificate", got, want)
	}
	watch.step("renewal failed into an urgent DNS support case")

	// The customer puts the CNAME back and retries: the retried renewal names the certificate in
	// use, like the renewal it retries, is validated through the CNAME, and the case resolves.
	if err := p.ChallSrv.SetCNAME(ctx, cname.GetName(), cname.GetValue()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.RetryApplication(e.ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: certID}); err != nil {
		t.Fatalf("RetryApplication: %v", err)
	}
	third := e.awaitHosted("retried renewal", certID, second.GetCurrentIssuance().GetIssuanceId())
	verifyChainAt(t, p.Roots(), third.GetCurrentIssuance().GetCertificateChainPem(), e.clk.Now())
	if got, want := e.acme.replaces(), []string{ariCertID(t, leaf1), ariCertID(t, leaf2), ariCertID(t, leaf2)}; !slices.Equal(got, want) {
		t.Errorf("orders Pebble created with replaces: %q; want %q, the retry naming the certificate in use", got, want)
	}
	if n := p.AwaitCount(challengePOST, challenges+1); n <= challenges {
		t.Errorf("Pebble got no challenge request for the retried renewal (%d in all); want it validated through the CNAME", n)
	}
	sc, err := e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: cases[0].GetCaseId()})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.GetCase().GetStatus(); got != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("the DNS case is %s after the retried renewal was hosted, want RESOLVED", got)
	}
	watch.step("CNAME restored, renewal retried: hosted, case resolved")

	// The key leaks: revoked at the CA (Pebble's own records say so, with the reason), and the
	// hosted bundle gets its replacement, with a new key, through the CNAME.
	leaf3 := verifyChainAt(t, p.Roots(), third.GetCurrentIssuance().GetCertificateChainPem(), e.clk.Now())
	if _, err := e.a.RevokeCertificate(e.ctx, &lifecyclev1.RevokeCertificateRequest{CertificateId: certID,
		Reason: lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE}); err != nil {
		t.Fatalf("RevokeCertificate: %v", err)
	}
	if st, reason, err := p.CertStatus(ctx, leaf3.SerialNumber.Text(16)); err != nil || st != "Revoked" || reason != 1 {
		t.Errorf("Pebble's status of the revoked certificate: %q reason %d, %v; want Revoked, keyCompromise (1)", st, reason, err)
	}
	fourth := e.awaitHosted("replacement of the revoked certificate", certID, third.GetCurrentIssuance().GetIssuanceId())
	leaf4 := verifyChainAt(t, p.Roots(), fourth.GetCurrentIssuance().GetCertificateChainPem(), e.clk.Now())
	if leaf4.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf3.PublicKey) {
		t.Error("the replacement of the revoked certificate has its key")
	}
	watch.step("revoked at Pebble for keyCompromise; replacement hosted with a new key")
}
