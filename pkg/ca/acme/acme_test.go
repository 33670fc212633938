package acme_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/internal/pebbletest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
)

// Every test here runs against its own Pebble (a second or so to start) and in parallel: most of
// an issuance is Pebble's validation sleep, so parallel tests cost little CPU.

// TestIssueThroughDelegation: with the customer's CNAMEs in place, an application is issued; the
// chain is leaf first, verifies against Pebble's issuing root and names the domains; a wildcard and
// its base domain share one CNAME; the values are removed from the delegated zone afterwards.
func TestIssueThroughDelegation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	tests := []struct {
		name    string
		domains []string
		cnames  int
	}{
		{"single domain", []string{"shop.example.com"}, 1},
		{"wildcard and its base domain", []string{"*.example.org", "example.org"}, 1},
		{"two domains", []string{"a.example.net", "b.example.net"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			binding := "bdl_" + strings.ReplaceAll(tc.name, " ", "-")
			want := e.delegate(binding, tc.domains...)
			sub := e.submit(e.client, request(t, "app-"+binding, binding, tc.domains...))
			if !slices.Equal(sub.Instructions, want) || len(want) != tc.cnames {
				t.Errorf("instructions %+v, want %d CNAMEs %+v", sub.Instructions, tc.cnames, want)
			}
			for _, rec := range sub.Instructions {
				if rec.Type != "CNAME" || !strings.HasPrefix(rec.Name, "_acme-challenge.") || !strings.HasSuffix(rec.Value, "."+zone) {
					t.Errorf("instruction %+v: want CNAME _acme-challenge.<domain> → <label>.%s", rec, zone)
				}
			}
			st := e.await(e.client, sub.Ref)
			if st.State != ca.Issued {
				t.Fatalf("state %v %s %q, want issued", st.State, st.Reason, st.Message)
			}
			e.verify(st.ChainPEM, tc.domains...)
			if n, _ := e.zone.published(sub.Instructions); n != 0 {
				t.Errorf("%d DNS-01 values left in the delegated zone after issuance", n)
			}
			again, err := e.client.Status(t.Context(), sub.Ref)
			if err != nil || again.State != ca.Issued || string(again.ChainPEM) != string(st.ChainPEM) {
				t.Errorf("Status again = %v, %v; want the same issued chain", again.State, err)
			}
		})
	}
}

// TestRenewalWithoutCustomerAction: a second application of the same binding gets the same CNAME
// instructions, and is validated afresh (no authorization is left to reuse) through the CNAME
// published for the first, with no change to the customer's zone.
func TestRenewalWithoutCustomerAction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{NoAuthzReuse: true}, relinquish)
	domains := []string{"*.renew.example.com", "renew.example.com"}
	first, sub1 := e.issue(e.client, request(t, "app-1", "bdl_renew", domains...))
	_, calls := e.zone.published(nil)

	// No e.delegate: the customer does nothing for the renewal.
	sub2 := e.submit(e.client, request(t, "app-2", "bdl_renew", domains...))
	if !slices.Equal(sub2.Instructions, sub1.Instructions) {
		t.Errorf("renewal instructions %+v, want the first application's %+v", sub2.Instructions, sub1.Instructions)
	}
	st := e.await(e.client, sub2.Ref)
	if st.State != ca.Issued {
		t.Fatalf("renewal: %v %s %q, want issued", st.State, st.Reason, st.Message)
	}
	e.verify(st.ChainPEM, domains...)
	if string(st.ChainPEM) == string(first) {
		t.Error("renewal returned the first certificate")
	}
	if _, after := e.zone.published(nil); after <= calls {
		t.Errorf("no DNS-01 value published for the renewal (%d publishes before, %d after): it was not validated anew", calls, after)
	}

	// Another subscription covering the same domain gets other targets: its values never satisfy
	// the CNAME this customer published.
	other := e.submit(e.client, request(t, "app-other", "bdl_other", domains...))
	if slices.Equal(other.Instructions, sub1.Instructions) {
		t.Error("another binding got the same CNAME targets")
	}
	if st := e.await(e.client, other.Ref); st.State != ca.Rejected || st.Reason != ca.ReasonDNS {
		t.Errorf("other binding: %v %s %q, want rejected for DNS", st.State, st.Reason, st.Message)
	}
}

// TestCNAMERemoved: once the customer removes the CNAME, the next application is rejected with
// ReasonDNS: a verdict, not an error.
func TestCNAMERemoved(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{NoAuthzReuse: true}, relinquish)
	_, sub := e.issue(e.client, request(t, "app-1", "bdl_gone", "gone.example.com"))
	for _, rec := range sub.Instructions {
		if err := e.pebble.ChallSrv.ClearCNAME(t.Context(), rec.Name); err != nil {
			t.Fatal(err)
		}
	}
	sub2 := e.submit(e.client, request(t, "app-2", "bdl_gone", "gone.example.com"))
	st := e.await(e.client, sub2.Ref)
	if st.State != ca.Rejected || st.Reason != ca.ReasonDNS {
		t.Fatalf("%v %s %q, want rejected with reason DNS", st.State, st.Reason, st.Message)
	}
	if !strings.Contains(st.Message, "gone.example.com") || !strings.Contains(st.Message, "unauthorized") {
		t.Errorf("message %q: want the domain and the CA's problem", st.Message)
	}
	if n, _ := e.zone.published(sub2.Instructions); n != 0 {
		t.Errorf("%d DNS-01 values left after the rejection", n)
	}
}

// relinquish makes the client deactivate each issued order's authorizations. Tests that must see
// every order validated set it: Pebble reuses a valid authorization 1% of the time even with
// NoAuthzReuse (see pebbletest.Options).
func relinquish(c *acme.Config, _ *pebbletest.Pebble) { c.RelinquishAuthorizations = true }

// TestRelinquishAuthorizations: with RelinquishAuthorizations, every order of a domain is validated
// afresh, although Pebble (at its default) reuses a valid authorization half of the time.
func TestRelinquishAuthorizations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{}, relinquish)
	const challenge = "POST /chalZ/"
	e.issue(e.client, request(t, "app-1", "bdl_relinquish", "relinquish.example.com"))
	for i := range 2 {
		before := e.pebble.Count(challenge)
		e.issue(e.client, request(t, fmt.Sprintf("app-again-%d", i), "bdl_relinquish", "relinquish.example.com"))
		if after := e.pebble.AwaitCount(challenge, before+1); after <= before {
			t.Errorf("order %d after the first: no challenge request (%d before, %d after); want it validated afresh", i+2, before, after)
		}
	}
}

// TestSubmitIdempotent: Submit with a request id already submitted returns the first submission
// whatever the request holds, sequentially and concurrently, and creates one order.
func TestSubmitIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	e.delegate("bdl_idem", "idem.example.com")
	first := e.submit(e.client, request(t, "app-idem", "bdl_idem", "idem.example.com"))
	again := e.submit(e.client, request(t, "app-idem", "bdl_other", "other.example.com"))
	if again.Ref != first.Ref || !slices.Equal(again.Instructions, first.Instructions) {
		t.Errorf("second Submit = %+v, want the first %+v", again, first)
	}

	var wg sync.WaitGroup
	refs := make([]string, 6)
	req := request(t, "app-concurrent", "bdl_idem", "idem.example.com")
	for i := range refs {
		wg.Go(func() {
			sub, err := e.client.Submit(t.Context(), req)
			if err != nil {
				t.Errorf("concurrent Submit: %v", err)
			}
			refs[i] = sub.Ref
		})
	}
	wg.Wait()
	for _, r := range refs {
		if r != refs[0] {
			t.Fatalf("concurrent Submits returned refs %q, want one", refs)
		}
	}
	if n := e.pebble.AwaitCount("Added order", 2); n != 2 {
		t.Errorf("Pebble created %d orders, want 2 (one per request id)", n)
	}
	for _, ref := range []string{first.Ref, refs[0]} {
		if st := e.await(e.client, ref); st.State != ca.Issued {
			t.Errorf("%s: %v %s %q, want issued", ref, st.State, st.Reason, st.Message)
		}
	}
}

// TestAccountPersists: the account key is made once and kept: a client reopened on the same
// database uses the same account without registering again, and a client on another database has
// another account.
func TestAccountPersists(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	url1, err := e.client.AccountURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Pebble logs each request, and rejects 5% of nonces: lego may have sent the request twice.
	registered := e.pebble.Count("POST /sign-me-up")
	if registered == 0 {
		t.Fatal("no new-account request")
	}
	if err := e.client.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := e.open(e.cfg)
	url2, err := reopened.AccountURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if url2 != url1 {
		t.Errorf("reopened account %s, want %s", url2, url1)
	}
	chain, _ := e.issue(reopened, request(t, "app-reopened", "bdl_acct", "acct.example.com"))
	e.verify(chain, "acct.example.com")
	if n := e.pebble.Count("POST /sign-me-up"); n != registered {
		t.Errorf("%d new-account requests after reopening, want none (%d before)", n-registered, registered)
	}

	cfg := e.cfg
	cfg.DBPath = filepath.Join(t.TempDir(), "other.db")
	url3, err := e.open(cfg).AccountURL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if url3 == url1 {
		t.Error("a client on another database has the same account; want a key of its own")
	}
}

// TestExternalAccountBinding: a Pebble requiring EAB registers a client with a valid key id and
// HMAC key, and refuses one without, with an error (not a verdict) naming the EAB setting.
func TestExternalAccountBinding(t *testing.T) {
	t.Parallel()
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	e := newEnv(t, pebbletest.Options{EABKeys: map[string]string{kid: hmac}},
		func(c *acme.Config, _ *pebbletest.Pebble) { c.EAB = &acme.EAB{KeyID: kid, HMACKey: hmac} })
	chain, _ := e.issue(e.client, request(t, "app-eab", "bdl_eab", "eab.example.com"))
	e.verify(chain, "eab.example.com")

	tests := []struct {
		name string
		eab  *acme.EAB
		want string
	}{
		{"no EAB", nil, "External Account Binding"},
		{"unknown key id", &acme.EAB{KeyID: "kid-2", HMACKey: hmac}, "not known"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.cfg
			cfg.EAB = tc.eab
			cfg.DBPath = filepath.Join(t.TempDir(), "acme.db")
			c := e.open(cfg)
			_, err := c.Submit(t.Context(), request(t, "app-"+tc.name, "bdl_eab", "eab.example.com"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Submit error %v, want an account error mentioning %q", err, tc.want)
			}
			if _, err := c.AccountURL(t.Context()); err == nil {
				t.Error("AccountURL succeeded; want the same error")
			}
		})
	}
}

// TestRejectedIdentifier: a domain the CA refuses at new-order is a verdict recorded at Submit
// (no error) and returned by every Status.
func TestRejectedIdentifier(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{BlockedDomains: []string{"blocked.example.com"}})
	sub := e.submit(e.client, request(t, "app-blocked", "bdl_blocked", "blocked.example.com"))
	asked := e.pebble.Count("POST /order-plz")
	for range 2 {
		st, err := e.client.Status(t.Context(), sub.Ref)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		if st.State != ca.Rejected || st.Reason != ca.ReasonPolicy || !strings.Contains(st.Message, "rejectedIdentifier") {
			t.Fatalf("%v %s %q, want rejected for policy (rejectedIdentifier)", st.State, st.Reason, st.Message)
		}
	}
	if n := e.pebble.Count("POST /order-plz"); n != asked {
		t.Errorf("Status sent %d new-order requests, want none: a refusal is not asked again", n-asked)
	}
}

// TestCancel: cancelling a pending application deactivates its authorizations, removes its
// values, and makes it Rejected ("cancelled"); cancelling again or an unknown ref is no error.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{NoAuthzReuse: true})
	// No CNAME: the challenge fails slowly enough at Pebble to cancel first, or fails first; both
	// must leave no value behind.
	sub := e.submit(e.client, request(t, "app-cancel", "bdl_cancel", "cancel.example.com"))
	if err := e.client.Cancel(t.Context(), sub.Ref); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st, err := e.client.Status(t.Context(), sub.Ref)
	if err != nil || st.State != ca.Rejected || st.Message != "cancelled" {
		t.Errorf("Status after Cancel = %v %q, %v; want rejected, cancelled", st.State, st.Message, err)
	}
	if n, _ := e.zone.published(sub.Instructions); n != 0 {
		t.Errorf("%d values left after Cancel", n)
	}
	for _, ref := range []string{sub.Ref, "acme_unknown"} {
		if err := e.client.Cancel(t.Context(), ref); err != nil {
			t.Errorf("Cancel(%s) = %v, want nil", ref, err)
		}
	}
}

// TestCAStopped: with Pebble stopped mid-application, Status returns an error, never a verdict,
// and so does Submit; after a restart (Pebble forgets everything) a new application registers the
// account anew and is issued, and the application whose order the CA forgot carries on with a new
// order and is issued too.
func TestCAStopped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{})
	e.delegate("bdl_down", "down.example.com")
	sub := e.submit(e.client, request(t, "app-1", "bdl_down", "down.example.com"))
	e.pebble.Stop()
	st, err := e.client.Status(t.Context(), sub.Ref)
	if err == nil {
		t.Fatalf("Status with Pebble stopped = %v %s %q, want an error", st.State, st.Reason, st.Message)
	}
	if _, err := e.client.Submit(t.Context(), request(t, "app-2", "bdl_down", "down.example.com")); err == nil {
		t.Error("Submit with Pebble stopped succeeded, want an error")
	}

	e.pebble.Restart()
	if _, err := e.client.Status(t.Context(), sub.Ref); err == nil {
		t.Error("Status of an order the restarted CA forgot succeeded, want an error (never a verdict)")
	}
	// The application submitted while the CA was down is carried on by the next Submit: the
	// account is registered again (the old one is gone) and the order created.
	var sub2 ca.Submission
	deadline := time.Now().Add(awaitTimeout)
	for {
		if sub2, err = e.client.Submit(t.Context(), request(t, "app-2", "bdl_down", "down.example.com")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Submit after the restart still fails: %v", err)
		}
		var ra *ca.RetryAfterError
		if errors.As(err, &ra) && ra.After <= 0 {
			t.Fatalf("RetryAfterError with After %v", ra.After)
		}
		time.Sleep(100 * time.Millisecond)
	}
	st = e.await(e.client, sub2.Ref)
	if st.State != ca.Issued {
		t.Fatalf("after the restart: %v %s %q, want issued", st.State, st.Reason, st.Message)
	}
	e.verify(st.ChainPEM, "down.example.com")

	st = e.await(e.client, sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("the application whose order the CA forgot: %v %s %q, want issued with a new order", st.State, st.Reason, st.Message)
	}
	e.verify(st.ChainPEM, "down.example.com")
}

// TestFirstApplicationWaitsForCNAME: with a CNAME resolver, the challenge is not accepted before
// the customer publishes the CNAME the instructions name; once it is there, the application is
// issued.
func TestFirstApplicationWaitsForCNAME(t *testing.T) {
	t.Parallel()
	e := newEnv(t, pebbletest.Options{}, func(c *acme.Config, p *pebbletest.Pebble) {
		c.CNAMEResolver = p.ChallSrv.DNSAddr
	})
	sub := e.submit(e.client, request(t, "app-first", "bdl_first", "first.example.com"))
	for range 3 {
		st, err := e.client.Status(t.Context(), sub.Ref)
		if err != nil || st.State != ca.Pending || st.RetryAfter < 10*time.Second {
			t.Fatalf("Status before the CNAME = %v %s %q (RetryAfter %v), %v; want pending, polled again in 10s or more", st.State, st.Reason, st.Message, st.RetryAfter, err)
		}
	}
	if n := e.pebble.Count("POST /chalZ/"); n != 0 {
		t.Fatalf("%d challenge requests before the CNAME was published, want none", n)
	}
	for _, rec := range sub.Instructions {
		if err := e.pebble.ChallSrv.SetCNAME(t.Context(), rec.Name, rec.Value); err != nil {
			t.Fatal(err)
		}
	}
	st := e.await(e.client, sub.Ref)
	if st.State != ca.Issued {
		t.Fatalf("%v %s %q, want issued", st.State, st.Reason, st.Message)
	}
	e.verify(st.ChainPEM, "first.example.com")
}

// TestCNAMENeverPublished: with a CNAME resolver, an application whose CNAME is still missing (or
// wrong) after CNAMETimeout is rejected with ReasonDNS naming the record, without the CA ever
// validating it.
func TestCNAMENeverPublished(t *testing.T) {
	t.Parallel()
	clk := clockwork.NewFakeClockAt(time.Now())
	e := newEnv(t, pebbletest.Options{}, func(c *acme.Config, p *pebbletest.Pebble) {
		c.CNAMEResolver, c.CNAMETimeout, c.Clock = p.ChallSrv.DNSAddr, time.Hour, clk
	})
	sub := e.submit(e.client, request(t, "app-never", "bdl_never", "never.example.com"))
	if err := e.pebble.ChallSrv.SetCNAME(t.Context(), sub.Instructions[0].Name, "elsewhere.example.net"); err != nil {
		t.Fatal(err)
	}
	if st, err := e.client.Status(t.Context(), sub.Ref); err != nil || st.State != ca.Pending {
		t.Fatalf("Status within the timeout = %v %q, %v; want pending", st.State, st.Message, err)
	}
	clk.Advance(time.Hour)
	st, err := e.client.Status(t.Context(), sub.Ref)
	if err != nil || st.State != ca.Rejected || st.Reason != ca.ReasonDNS {
		t.Fatalf("Status after the timeout = %v %s %q, %v; want rejected for DNS", st.State, st.Reason, st.Message, err)
	}
	for _, want := range []string{sub.Instructions[0].Name, sub.Instructions[0].Value, "elsewhere.example.net"} {
		if !strings.Contains(st.Message, want) {
			t.Errorf("message %q does not name %q", st.Message, want)
		}
	}
	if n := e.pebble.Count("POST /chalZ/"); n != 0 {
		t.Errorf("%d challenge requests, want none", n)
	}
}

// TestCNAMELookupFailsNoVerdict: with a CNAME resolver that cannot be reached, the pre-check has
// no answer and so no verdict, however long that lasts: the application stays pending (polled
// with backoff) and the CA is never asked to validate.
func TestCNAMELookupFailsNoVerdict(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := pc.LocalAddr().String() // nothing listens here once closed: queries are refused
	pc.Close()
	clk := clockwork.NewFakeClockAt(time.Now())
	e := newEnv(t, pebbletest.Options{}, func(c *acme.Config, p *pebbletest.Pebble) {
		c.CNAMEResolver, c.CNAMETimeout, c.Clock = down, time.Hour, clk
	})
	sub := e.submit(e.client, request(t, "app-down", "bdl_down", "down.example.com"))
	var last time.Duration
	for i := range 8 {
		st, err := e.client.Status(t.Context(), sub.Ref)
		if err != nil || st.State != ca.Pending {
			t.Fatalf("Status %v into the resolver outage = %v %s %q, %v; want pending", time.Duration(i)*30*time.Minute, st.State, st.Reason, st.Message, err)
		}
		last = st.RetryAfter
		clk.Advance(30 * time.Minute)
	}
	if last != 5*time.Minute {
		t.Errorf("RetryAfter after 8 failed polls = %v, want the 5-minute cap of the backoff", last)
	}
	if n := e.pebble.Count("POST /chalZ/"); n != 0 {
		t.Errorf("%d challenge requests, want none", n)
	}
}
