package lifecycle_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

var stExpired = lifecyclev1.CertificateState_CERTIFICATE_STATE_EXPIRED

// activate calls ActivateCertificate as client c.
func (e *env) activate(c lifecyclev1.LifecycleServiceClient, certID string) (*lifecyclev1.Certificate, error) {
	resp, err := c.ActivateCertificate(e.ctx, &lifecyclev1.ActivateCertificateRequest{CertificateId: certID})
	return resp.GetCertificate(), err
}

// wantRefused fails the test unless err has code and its message mentions mention.
func wantRefused(t *testing.T, what string, err error, code codes.Code, mention string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), mention) {
		t.Errorf("%s = %v, want %s mentioning %q", what, err, code, mention)
	}
}

// TestNonHostedBundle follows a 2-year subscription without hosting (one-year certificates): the
// first certificate is ISSUED with no renewal planned, and nothing renews or activates by itself;
// the customer activates the second year once the first has its certificate, applies, and gets a
// certificate that ends no later than the second year does.
func TestNonHostedBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	b := e.buy("dv-single", dv, single, 1, 2, false)
	first, second := b.GetCertificates()[0].GetCertificateId(), b.GetCertificates()[1].GetCertificateId()

	_, err := e.activate(e.a, second)
	wantRefused(t, "activating instance 2 before instance 1 is issued", err, codes.FailedPrecondition, "instance 1")
	_, err = e.activate(e.a, first)
	wantRefused(t, "activating instance 1 (PENDING_APPLICATION)", err, codes.FailedPrecondition, "PENDING_APPLICATION")

	c1 := e.issue(application(first, "shop.example.com"))
	if c1.GetState() != stIssued || c1.GetRenewTime() != nil {
		t.Fatalf("first certificate: %s, renew_time %v; want ISSUED with no renewal planned", c1.GetState(), c1.GetRenewTime())
	}
	t0 := c1.GetCurrentIssuance().GetNotBefore().AsTime()
	if got := c1.GetCurrentIssuance().GetNotAfter().AsTime(); !got.Equal(t0.Add(365 * day)) {
		t.Errorf("first certificate ends at day %.2f, want day 365", days(t0, got))
	}
	if hs := e.bundle(b.GetBundleId()).GetHostingStatus(); hs != lifecyclev1.HostingStatus_HOSTING_STATUS_NOT_HOSTED {
		t.Errorf("hosting status %s, want NOT_HOSTED", hs)
	}

	// Past the renewal window a hosted certificate would have (day 335), nothing happens by itself.
	calls := e.ca.calls.Load()
	e.advance(340*day, nil)
	if got := e.states(b.GetBundleId()); got[0] != stIssued || got[1] != notActivated {
		t.Errorf("day 340: states %v, want [ISSUED NOT_ACTIVATED]", got)
	}
	if n := e.ca.calls.Load() - calls; n != 0 {
		t.Errorf("%d CA calls while the non-hosted certificate aged, want none", n)
	}
	h := e.history(first)
	if countEvents(h, lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED) != 0 || countEvents(h, lifecyclev1.EventType_EVENT_TYPE_APPLICATION_SUBMITTED) != 1 {
		t.Errorf("instance 1 history %v, want the one application and no renewal", h)
	}

	_, err = e.activate(e.b, second)
	wantRefused(t, "another account activating", err, codes.NotFound, "")
	c2, err := e.activate(e.a, second)
	if err != nil {
		t.Fatalf("ActivateCertificate: %v", err)
	}
	if c2.GetState() != pending {
		t.Errorf("activated instance is %s, want PENDING_APPLICATION", c2.GetState())
	}
	h = e.history(second)
	if last := h[len(h)-1]; last.GetType() != lifecyclev1.EventType_EVENT_TYPE_ACTIVATED || last.GetActor() != lifecyclev1.Actor_ACTOR_CUSTOMER ||
		last.GetFromState() != notActivated || last.GetToState() != pending {
		t.Errorf("last event of instance 2 = %v, want ACTIVATED NOT_ACTIVATED → PENDING_APPLICATION by the customer", last)
	}
	_, err = e.activate(e.a, second)
	wantRefused(t, "activating instance 2 again", err, codes.FailedPrecondition, "PENDING_APPLICATION")

	c2 = e.issue(application(second, "shop.example.com"))
	end := c2.GetCoverageEndTime().AsTime()
	if c2.GetState() != stIssued || c2.GetRenewTime() != nil || !end.Equal(t0.Add(730*day)) {
		t.Errorf("second certificate: %s, renew_time %v, coverage end day %.2f; want ISSUED, none, day 730",
			c2.GetState(), c2.GetRenewTime(), days(t0, end))
	}
	if got := c2.GetCurrentIssuance().GetNotAfter().AsTime(); got.After(end) {
		t.Errorf("second certificate ends at day %.2f, after its coverage end (day %.2f)", days(t0, got), days(t0, end))
	}

	e.advance(26*day, nil) // day 366
	if got := e.states(b.GetBundleId()); got[0] != stExpired || got[1] != stIssued {
		t.Errorf("day 366: states %v, want [EXPIRED ISSUED]", got)
	}
	if n := countEvents(e.history(first), lifecyclev1.EventType_EVENT_TYPE_EXPIRED); n != 1 {
		t.Errorf("%d EXPIRED events for instance 1, want 1", n)
	}
}

// TestActivateHostedBundle: a hosted bundle's instances are activated by its renewals, never by
// the customer.
func TestActivateHostedBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	_, err := e.activate(e.a, b.GetCertificates()[1].GetCertificateId())
	wantRefused(t, "ActivateCertificate on a hosted bundle", err, codes.FailedPrecondition, "hosted")
	if got := e.states(b.GetBundleId()); got[1] != notActivated {
		t.Errorf("instance 2 is %s, want NOT_ACTIVATED", got[1])
	}
	_, err = e.activate(e.a, "crt_1")
	wantRefused(t, "ActivateCertificate with a malformed id", err, codes.InvalidArgument, "certificate_id")
}
