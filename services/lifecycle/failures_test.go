package lifecycle_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

var (
	dv     = lifecyclev1.ValidationType_VALIDATION_TYPE_DV
	ov     = lifecyclev1.ValidationType_VALIDATION_TYPE_OV
	single = lifecyclev1.DomainType_DOMAIN_TYPE_SINGLE
	multi  = lifecyclev1.DomainType_DOMAIN_TYPE_MULTI

	stValidating = lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING
	stFailed     = lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATION_FAILED
	stHosted     = lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED
	stIssued     = lifecyclev1.CertificateState_CERTIFICATE_STATE_ISSUED
	stNotActive  = lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED
)

// hostedDV buys a 3-year hosted DV bundle and submits its first application for
// shop.example.com; it returns the bundle and the records to publish.
func (e *env) hostedDV() (*lifecyclev1.Bundle, []*lifecyclev1.DnsRecord) {
	e.t.Helper()
	b := e.buy("dv-single", dv, single, 1, 3, true)
	sub := e.submit(&lifecyclev1.SubmitApplicationRequest{
		CertificateId: b.GetCertificates()[0].GetCertificateId(),
		Domains:       []string{"shop.example.com"},
		Contact:       &lifecyclev1.Contact{Email: "ops@example.com"},
	})
	return b, sub.GetInstructions()
}

// hosting buys a hosted DV bundle and gets its first certificate issued and hosted.
func (e *env) hosting() (*lifecyclev1.Bundle, []*lifecyclev1.DnsRecord) {
	e.t.Helper()
	b, records := e.hostedDV()
	e.publish(records)
	e.tick()
	if got := e.certificate(b.GetCertificates()[0].GetCertificateId()).GetState(); got != stHosted {
		e.t.Fatalf("first certificate is %s, want HOSTED", got)
	}
	return b, records
}

func (e *env) states(bundleID string) []lifecyclev1.CertificateState {
	var out []lifecyclev1.CertificateState
	for _, c := range e.bundle(bundleID).GetCertificates() {
		out = append(out, c.GetState())
	}
	return out
}

func countEvents(evs []*lifecyclev1.LifecycleEvent, typ lifecyclev1.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev.GetType() == typ {
			n++
		}
	}
	return n
}

// TestVerificationRejected: a missing TXT record, or organization details the CA rejects, move
// the instance to VALIDATION_FAILED with the reason and open a support case that the account and
// the support engineers see, and nobody else.
func TestVerificationRejected(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		validation lifecyclev1.ValidationType
		domainType lifecyclev1.DomainType
		org        *lifecyclev1.Organization
		publish    bool
		caa        string // a CAA record at example.com, in zone file syntax
		wait       time.Duration
		reason     lifecyclev1.RejectionReason
		message    string
	}{
		{
			name: "TXT record missing", validation: dv, domainType: single,
			publish: false, wait: time.Hour + time.Minute,
			reason: lifecyclev1.RejectionReason_REJECTION_REASON_DNS, message: "_certhosting-validation.shop.example.com",
		},
		{
			name: "organization rejected", validation: ov, domainType: multi,
			org:     &lifecyclev1.Organization{LegalName: "Evil Corp", Country: "US", Locality: "Springfield", RegistrationNumber: "123"},
			publish: true, wait: 0,
			reason: lifecyclev1.RejectionReason_REJECTION_REASON_ORGANIZATION, message: "Evil Corp",
		},
		{
			name: "CAA names another CA", validation: dv, domainType: single,
			publish: true, caa: `example.com. 60 IN CAA 0 issue "letsencrypt.org"`,
			reason: lifecyclev1.RejectionReason_REJECTION_REASON_CAA, message: "CAA at example.com allows only letsencrypt.org",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{rejectOrg: regexp.MustCompile(`^Evil`)})
			b := e.buy("p", tc.validation, tc.domainType, 1, 2, true)
			cert := b.GetCertificates()[0].GetCertificateId()
			sub, err := e.a.SubmitApplication(e.ctx, &lifecyclev1.SubmitApplicationRequest{
				CertificateId: cert, Domains: []string{"shop.example.com"},
				Contact: &lifecyclev1.Contact{Email: "ops@example.com"}, Organization: tc.org,
			})
			if err != nil {
				t.Fatalf("SubmitApplication: %v", err)
			}
			if tc.publish {
				e.publish(sub.GetInstructions())
			}
			if tc.caa != "" {
				rr, err := dns.NewRR(tc.caa)
				if err != nil {
					t.Fatal(err)
				}
				e.zone.Add(rr)
			}
			e.tick()
			if tc.wait > 0 {
				if got := e.certificate(cert).GetState(); got != stValidating {
					t.Fatalf("before the DNS timeout the instance is %s, want VALIDATING (still waiting for the record)", got)
				}
				e.advance(tc.wait, nil)
			}

			c := e.certificate(cert)
			if c.GetState() != stFailed {
				t.Fatalf("instance is %s, want VALIDATION_FAILED", c.GetState())
			}
			app := c.GetCurrentApplication()
			if app.GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_REJECTED || app.GetRejectionReason() != tc.reason ||
				!strings.Contains(app.GetRejectionMessage(), tc.message) {
				t.Errorf("application: %s %s %q; want REJECTED %s mentioning %q", app.GetStatus(), app.GetRejectionReason(), app.GetRejectionMessage(), tc.reason, tc.message)
			}
			cases := e.cases(e.aSupport)
			if len(cases) != 1 {
				t.Fatalf("customer sees %d support cases, want 1", len(cases))
			}
			sc := cases[0]
			if sc.GetKind() != lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_VALIDATION_FAILED || sc.GetRejectionReason() != tc.reason ||
				sc.GetCertificateId() != cert || sc.GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_OPEN ||
				sc.GetAssignee() != "alice" || sc.GetUrgent() {
				t.Errorf("case = %v; want an open, non-urgent VALIDATION_FAILED case for %s with reason %s assigned to alice", sc, cert, tc.reason)
			}
			if got := e.cases(e.support); len(got) != 1 || got[0].GetCaseId() != sc.GetCaseId() {
				t.Errorf("support engineer sees %v, want the case", got)
			}
			if got := e.cases(e.bSupport); len(got) != 0 {
				t.Errorf("another account sees %d cases, want none", len(got))
			}
			if _, err := e.bSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()}); status.Code(err) != codes.NotFound {
				t.Errorf("another account's GetSupportCase: %v, want NotFound", err)
			}
			evs := e.history(cert)
			if countEvents(evs, lifecyclev1.EventType_EVENT_TYPE_VALIDATION_FAILED) != 1 || countEvents(evs, lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_OPENED) != 1 {
				t.Errorf("history lacks exactly one VALIDATION_FAILED and one SUPPORT_CASE_OPENED event: %v", evs)
			}
		})
	}
}

// TestResubmitAfterFix: once the record is published, a retry (by the customer, or by a support
// engineer for the customer) gets the certificate issued and hosted, and the case resolves.
func TestResubmitAfterFix(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"customer", "support engineer"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			b, records := e.hostedDV()
			cert := b.GetCertificates()[0].GetCertificateId()
			e.advance(time.Hour+time.Minute, nil)
			if got := e.certificate(cert).GetState(); got != stFailed {
				t.Fatalf("instance is %s, want VALIDATION_FAILED", got)
			}
			e.publish(records)
			req := &lifecyclev1.RetryApplicationRequest{CertificateId: cert}
			var err error
			if by == "customer" {
				_, err = e.a.RetryApplication(e.ctx, req)
			} else {
				staff := lifecyclev1.NewLifecycleServiceClient(e.supportConn)
				_, err = staff.RetryApplication(e.ctx, req)
			}
			if err != nil {
				t.Fatalf("RetryApplication: %v", err)
			}
			e.tick()
			c := e.certificate(cert)
			if c.GetState() != stHosted {
				t.Fatalf("after the retry the instance is %s, want HOSTED", c.GetState())
			}
			cases := e.cases(e.aSupport)
			if len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
				t.Errorf("cases = %v, want the one case RESOLVED", cases)
			}
			if _, err := e.b.RetryApplication(e.ctx, req); status.Code(err) != codes.NotFound {
				t.Errorf("another account's RetryApplication: %v, want NotFound", err)
			}
		})
	}
}

// TestCAUnavailableDuringRenewal: while the CA cannot be reached, the renewal is retried with
// backoff and never turned into a verdict; when the CA is back it completes, and the next
// instance was activated exactly once.
func TestCAUnavailableDuringRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	b, _ := e.hosting()
	first, second, third := b.GetCertificates()[0].GetCertificateId(), b.GetCertificates()[1].GetCertificateId(), b.GetCertificates()[2].GetCertificateId()

	e.advance(330*day, nil)
	e.ca.down.Store(true)
	before := e.ca.calls.Load()
	e.advance(10*day, nil) // renewal time (day 335) passes while the CA is down
	calls := e.ca.calls.Load() - before
	if got := e.states(b.GetBundleId()); got[0] != stHosted || got[1] != stValidating || got[2] != stNotActive {
		t.Fatalf("while the CA is down: states %v, want [HOSTED VALIDATING NOT_ACTIVATED]", got)
	}
	// Backoff from 5s doubling to 1h over ~5 days: a few dozen to ~150 attempts, not one per tick.
	if calls < 10 || calls > 200 {
		t.Errorf("%d CA calls in 5 days of outage; want retries with backoff (between 10 and 200)", calls)
	}
	app := e.certificate(second).GetCurrentApplication()
	if app.GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_SUBMITTING {
		t.Errorf("renewal application is %s while the CA is down, want SUBMITTING", app.GetStatus())
	}

	e.ca.down.Store(false)
	e.advance(2*day, nil)
	if got := e.states(b.GetBundleId()); got[0] != stIssued || got[1] != stHosted || got[2] != stNotActive {
		t.Fatalf("after the CA is back: states %v, want [ISSUED HOSTED NOT_ACTIVATED]", got)
	}
	if got := e.certificate(second).GetCurrentApplication().GetApplicationId(); got != app.GetApplicationId() {
		t.Errorf("the renewal was issued for application %s, want the one application %s", got, app.GetApplicationId())
	}
	h := e.history(second)
	if countEvents(h, lifecyclev1.EventType_EVENT_TYPE_ACTIVATED) != 1 || countEvents(h, lifecyclev1.EventType_EVENT_TYPE_APPLICATION_SUBMITTED) != 1 {
		t.Errorf("instance 2 history: want one activation and one application, got %v", h)
	}
	if countEvents(e.history(third), lifecyclev1.EventType_EVENT_TYPE_ACTIVATED) != 0 {
		t.Error("instance 3 was activated; no extra instance may be")
	}
	if n := countEvents(e.history(first), lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED); n != 1 {
		t.Errorf("%d renewals started for instance 1, want 1", n)
	}
	if cases := e.cases(e.aSupport); len(cases) != 0 {
		t.Errorf("a transient outage opened cases: %v", cases)
	}
}

// TestLateRenewal: a renewal still not complete escalate_before (7 days for a one-year
// certificate) its predecessor's expiry opens an urgent case; the case resolves when the
// successor is hosted.
func TestLateRenewal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	b, _ := e.hosting()
	first := b.GetCertificates()[0].GetCertificateId()

	e.advance(330*day, nil)
	e.ca.down.Store(true)
	e.advance(28*day-time.Minute, nil) // day 358 minus a minute: not yet late
	if cases := e.cases(e.aSupport); len(cases) != 0 {
		t.Fatalf("cases before escalate time: %v", cases)
	}
	e.advance(2*time.Minute, nil) // day 358: 7 days before expiry
	cases := e.cases(e.aSupport)
	if len(cases) != 1 {
		t.Fatalf("%d cases at escalate time, want 1", len(cases))
	}
	sc := cases[0]
	if sc.GetKind() != lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_LATE_RENEWAL || !sc.GetUrgent() || sc.GetCertificateId() != first {
		t.Errorf("case = %v, want an urgent LATE_RENEWAL case for instance 1", sc)
	}

	e.ca.down.Store(false)
	e.advance(day, nil)
	if got := e.states(b.GetBundleId()); got[0] != stIssued || got[1] != stHosted {
		t.Fatalf("states %v, want the successor HOSTED", got)
	}
	resp, err := e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetCase().GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("late-renewal case is %s after the successor is hosted, want RESOLVED", resp.GetCase().GetStatus())
	}
}
