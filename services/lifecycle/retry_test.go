package lifecycle_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// inFlight counts a bundle's applications the CA is working on (at most one, always).
func (e *env) inFlight(bundleID string) int {
	n := 0
	for _, c := range e.bundle(bundleID).GetCertificates() {
		switch c.GetCurrentApplication().GetStatus() {
		case lifecyclev1.ApplicationStatus_APPLICATION_STATUS_SUBMITTING, lifecyclev1.ApplicationStatus_APPLICATION_STATUS_PENDING:
			n++
		}
	}
	return n
}

// caRequests counts the applications the CA received for a bundle (the idempotent resubmissions
// of one application count once).
func (e *env) caRequests(bundleID string) int {
	e.ca.mu.Lock()
	defer e.ca.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range e.ca.requests {
		if r.Binding == bundleID {
			seen[r.ID] = true
		}
	}
	return len(seen)
}

const renewalFailed = lifecyclev1.RenewalStatus_RENEWAL_STATUS_FAILED

// notes are a case's notes' texts.
func notes(c *lifecyclev1.SupportCase) []string {
	var out []string
	for _, n := range c.GetNotes() {
		out = append(out, n.GetText())
	}
	return out
}

func anyContains(texts []string, sub string) bool {
	return slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, sub) })
}

// TestRejectedRenewalRetried: a hosted renewal rejected because the customer removed the record
// is tried again by itself, after 1 h, 2 h, 4 h... (the default 30-day window), never with two
// applications in flight, each attempt one CA application and a note on the one case. Once the
// record is back, the next attempt renews: nobody calls RetryApplication. For a re-issue inside the
// instance (200-day certificates) and for a renewal that activates the next instance (one-year
// certificates).
func TestRejectedRenewalRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxValidity time.Duration
		renewalDay  time.Duration // after T0
		target      int           // the instance the successor belongs to (0-based)
		// failed is the target's state after the rejection: a re-issue leaves the instance HOSTED
		// (its certificate is still in use), an activated instance has none and is
		// VALIDATION_FAILED.
		failed lifecyclev1.CertificateState
		after  []lifecyclev1.CertificateState
	}{
		{"re-issue", 200 * day, 170 * day, 0, stHosted, []lifecyclev1.CertificateState{stHosted, stNotActive, stNotActive}},
		{"activation", 398 * day, 335 * day, 1, stFailed, []lifecyclev1.CertificateState{stIssued, stHosted, stNotActive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{maxValidity: tc.maxValidity, recheck: 10 * time.Minute})
			b, records := e.hosting()
			bundle := b.GetBundleId()
			target := b.GetCertificates()[tc.target].GetCertificateId()
			e.withhold(records)
			oneInFlight := func() {
				if n := e.inFlight(bundle); n > 1 {
					t.Fatalf("%d applications in flight at once, want at most one", n)
				}
			}

			// The renewal starts, the resolver answers without the record for the DNS timeout (1 h).
			e.advance(tc.renewalDay+time.Hour+time.Second, oneInFlight)
			c := e.certificate(target)
			if c.GetState() != tc.failed || c.GetRetryTime() == nil {
				t.Fatalf("after the rejection: %s, retry %v; want %s with a retry planned", c.GetState(), c.GetRetryTime(), tc.failed)
			}
			if got := c.GetRetryTime().AsTime().Sub(e.clk.Now()); got < 59*time.Minute || got > time.Hour {
				t.Errorf("first retry in %v, want an hour after the rejection", got)
			}
			cases := e.cases(e.aSupport)
			if len(cases) != 1 || !cases[0].GetUrgent() || cases[0].GetRejectionReason() != lifecyclev1.RejectionReason_REJECTION_REASON_DNS {
				t.Fatalf("cases = %v, want one urgent DNS case", cases)
			}
			first := cases[0]
			// The instance whose certificate is in use stays HOSTED, the failure beside it.
			holder := e.certificate(b.GetCertificates()[0].GetCertificateId())
			if holder.GetState() != stHosted || holder.GetRenewalStatus() != renewalFailed || holder.GetRenewalSupportCaseId() != first.GetCaseId() {
				t.Errorf("the instance in use: %s, renewal %s, case %q; want HOSTED, FAILED, %s", holder.GetState(),
					holder.GetRenewalStatus(), holder.GetRenewalSupportCaseId(), first.GetCaseId())
			}

			// Three days without the record: 1+2+4+8+16+24 h between attempts, an hour each at the CA.
			e.advance(3*day, oneInFlight)
			c = e.certificate(target)
			if got := c.GetRenewalRetries(); got < 4 || got > 6 {
				t.Errorf("%d automatic retries in three days, want 4 to 6", got)
			}
			if got, want := e.caRequests(bundle), 2+int(c.GetRenewalRetries()); got != want {
				t.Errorf("the CA received %d applications, want %d: the first one, the renewal, and one per retry", got, want)
			}
			cases = e.cases(e.aSupport)
			if len(cases) != 1 || cases[0].GetCaseId() != first.GetCaseId() || cases[0].GetAssignee() != first.GetAssignee() {
				t.Fatalf("cases = %v, want still the one case, with its engineer", cases)
			}
			texts := notes(cases[0])
			for _, want := range []string{"automatic retry 3 of the rejected renewal", "automatic retry 3: DNS verification failed", "automatic retry 4 at"} {
				if !anyContains(texts, want) {
					t.Errorf("case notes lack %q: %q", want, texts)
				}
			}

			// The customer puts the record back: the next attempt renews.
			e.publish(records)
			e.advance(2*day, oneInFlight)
			if got := e.states(bundle); !slices.Equal(got, tc.after) {
				t.Fatalf("after the record is back: states %v, want %v", got, tc.after)
			}
			c = e.certificate(target)
			if c.GetRetryTime() != nil || c.GetRenewalRetries() != 0 {
				t.Errorf("after the renewal: retry %v, %d retries; want none planned, the count reset", c.GetRetryTime(), c.GetRenewalRetries())
			}
			cases = e.cases(e.aSupport)
			if len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
				t.Errorf("cases = %v, want the one case RESOLVED", cases)
			}
			if n := countEvents(e.history(target), lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_OPENED); n != 1 {
				t.Errorf("%d SUPPORT_CASE_OPENED events, want 1", n)
			}
		})
	}
}

// TestRenewalRetriesStopAtExpiry: without the record the retries go on until the certificate in
// use expires, with the escalation noted on the same case; then they stop (the CA hears nothing
// more), and RetryApplication after the fix recovers, naming the certificate it replaces.
func TestRenewalRetriesStopAtExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	b, records := e.hosting()
	first := b.GetCertificates()[0].GetCertificateId()
	inUse := e.certificate(first).GetCurrentIssuance()
	e.withhold(records)
	e.advance(201*day, nil) // past the 200-day certificate's expiry
	c := e.certificate(first)
	if c.GetState() != stExpired || c.GetRenewalStatus() != renewalFailed || c.GetRetryTime() != nil {
		t.Fatalf("after the certificate in use expired: %s, renewal %s, retry %v; want EXPIRED, renewal FAILED, no retry planned",
			c.GetState(), c.GetRenewalStatus(), c.GetRetryTime())
	}
	if bs := e.bundle(b.GetBundleId()); bs.GetHostingStatus() != lifecyclev1.HostingStatus_HOSTING_STATUS_LAPSED || bs.GetCurrentCertificateId() != "" {
		t.Errorf("bundle after the certificate in use expired: hosting %s, current certificate %q; want LAPSED and none",
			bs.GetHostingStatus(), bs.GetCurrentCertificateId())
	}
	if n := countEvents(e.history(first), lifecyclev1.EventType_EVENT_TYPE_COVERAGE_LAPSED); n != 1 {
		t.Errorf("%d COVERAGE_LAPSED events, want 1", n)
	}
	if c.GetRenewalRetries() < 20 {
		t.Errorf("%d retries in the 30-day window, want at least 20 (a day apart at most)", c.GetRenewalRetries())
	}
	cases := e.cases(e.aSupport)
	if len(cases) != 1 || !cases[0].GetUrgent() {
		t.Fatalf("cases = %v, want the one urgent case", cases)
	}
	texts := notes(cases[0])
	if !anyContains(texts, "the renewal of instance 1 is not complete") {
		t.Errorf("case notes lack the escalation: %q", texts)
	}
	if !anyContains(texts, "no automatic retry: the certificate in use expires at") && !anyContains(texts, "automatic retries stopped") {
		t.Errorf("case notes do not say the retries stopped: %q", texts)
	}
	calls := e.caRequests(b.GetBundleId())
	e.advance(10*day, nil)
	if got := e.caRequests(b.GetBundleId()); got != calls {
		t.Errorf("the CA received %d more applications after the certificate in use expired, want none", got-calls)
	}

	e.publish(records)
	if _, err := e.a.RetryApplication(e.ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: first}); err != nil {
		t.Fatalf("RetryApplication: %v", err)
	}
	e.ca.mu.Lock()
	retry := e.ca.requests[len(e.ca.requests)-1]
	e.ca.mu.Unlock()
	if string(retry.Replaces) != inUse.GetCertificateChainPem() {
		t.Errorf("the retry's CA request replaces %.40q..., want the certificate it renews", retry.Replaces)
	}
	e.tick()
	c = e.certificate(first)
	if c.GetState() != stHosted || c.GetRenewTime() == nil {
		t.Fatalf("after the retry: %s renew_time %v, want HOSTED with a renewal planned", c.GetState(), c.GetRenewTime())
	}
	if bs := e.bundle(b.GetBundleId()); bs.GetHostingStatus() != hostingActive || bs.GetCurrentCertificateId() != first {
		t.Errorf("bundle after the retry: %s, current %q; want ACTIVE again, %s", bs.GetHostingStatus(), bs.GetCurrentCertificateId(), first)
	}
	if cases := e.cases(e.aSupport); len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("cases = %v, want the one case RESOLVED", cases)
	}
}

// TestLateThenRejectedOneCase: the incident of the field report. The CA is down when the renewal
// starts, so escalation opens an urgent LATE_RENEWAL case; then the CA is back and rejects the
// renewal (the record was removed). The rejection is a note on that case, with its reason, for the
// same engineer; no second case.
func TestLateThenRejectedOneCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day, recheck: 10 * time.Minute})
	b, records := e.hosting()
	e.withhold(records)
	e.advance(330*day, nil)
	e.ca.down.Store(true)
	e.advance(29*day, nil) // day 359: past the escalation (day 358)
	cases := e.cases(e.aSupport)
	if len(cases) != 1 || cases[0].GetKind() != lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_LATE_RENEWAL {
		t.Fatalf("cases = %v, want one LATE_RENEWAL case", cases)
	}
	late := cases[0]
	e.ca.down.Store(false)
	e.advance(6*time.Hour, nil)
	if n := countEvents(e.history(b.GetCertificates()[1].GetCertificateId()), lifecyclev1.EventType_EVENT_TYPE_VALIDATION_FAILED); n == 0 {
		t.Fatal("instance 2's renewal was not rejected within 6 hours of the CA's return")
	}
	cases = e.cases(e.aSupport)
	if len(cases) != 1 {
		t.Fatalf("%d cases, want the one: %v", len(cases), cases)
	}
	sc := cases[0]
	if sc.GetCaseId() != late.GetCaseId() || sc.GetAssignee() != late.GetAssignee() || !sc.GetUrgent() ||
		sc.GetRejectionReason() != lifecyclev1.RejectionReason_REJECTION_REASON_DNS || !anyContains(notes(sc), "DNS verification failed") {
		t.Errorf("case = %v, want the LATE_RENEWAL case, same engineer, urgent, with the DNS rejection noted", sc)
	}
	e.publish(records)
	e.advance(2*day, nil)
	if got := e.states(b.GetBundleId()); !slices.Equal(got, []lifecyclev1.CertificateState{stIssued, stHosted, stNotActive}) {
		t.Fatalf("states %v, want the successor hosted", got)
	}
	if cases := e.cases(e.aSupport); len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("cases = %v, want the one case RESOLVED", cases)
	}
}

// TestFirstApplicationRejectedTwiceOneCase: a customer's first application is theirs to fix:
// rejected, it is not retried by itself; the customer's resubmission and its rejection are notes
// on the same case.
func TestFirstApplicationRejectedTwiceOneCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	b, _ := e.hostedDV()
	cert := b.GetCertificates()[0].GetCertificateId()
	e.advance(time.Hour+time.Minute, nil)
	if c := e.certificate(cert); c.GetState() != stFailed || c.GetRetryTime() != nil {
		t.Fatalf("after the rejection: %s, retry %v; want VALIDATION_FAILED with no automatic retry", c.GetState(), c.GetRetryTime())
	}
	if _, err := e.a.RetryApplication(e.ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: cert}); err != nil {
		t.Fatalf("RetryApplication: %v", err)
	}
	e.advance(2*time.Hour, nil)
	if got := e.certificate(cert).GetState(); got != stFailed {
		t.Fatalf("after the second rejection: %s, want VALIDATION_FAILED", got)
	}
	cases := e.cases(e.aSupport)
	if len(cases) != 1 || cases[0].GetUrgent() {
		t.Fatalf("cases = %v, want one case, not urgent (no certificate in use yet)", cases)
	}
	texts := notes(cases[0])
	if !anyContains(texts, "resubmitted by the customer") || !anyContains(texts, "DNS verification failed") {
		t.Errorf("case notes %q, want the resubmission and its rejection", texts)
	}
}

// TestResolvedByHandThenNewIncident: an engineer who resolves a case by hand ends the incident:
// the next rejection opens a new case; the old one cannot be reopened beside it.
func TestResolvedByHandThenNewIncident(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	b, _ := e.hostedDV()
	cert := b.GetCertificates()[0].GetCertificateId()
	e.advance(time.Hour+time.Minute, nil)
	first := e.cases(e.support)
	if len(first) != 1 {
		t.Fatalf("cases = %v, want one", first)
	}
	resolved := lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED
	if _, err := e.support.UpdateSupportCase(e.ctx, &lifecyclev1.UpdateSupportCaseRequest{CaseId: first[0].GetCaseId(), Status: resolved}); err != nil {
		t.Fatalf("resolving by hand: %v", err)
	}
	if _, err := e.a.RetryApplication(e.ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: cert}); err != nil {
		t.Fatalf("RetryApplication: %v", err)
	}
	e.advance(2*time.Hour, nil)
	cases := e.cases(e.support)
	if len(cases) != 2 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_OPEN {
		t.Fatalf("cases = %v, want a new open case beside the resolved one", cases)
	}
	_, err := e.support.UpdateSupportCase(e.ctx, &lifecyclev1.UpdateSupportCaseRequest{CaseId: first[0].GetCaseId(),
		Status: lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_IN_PROGRESS})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), cases[0].GetCaseId()) {
		t.Errorf("reopening the old case beside the open one: %v, want FailedPrecondition naming %s", err, cases[0].GetCaseId())
	}
}

// TestCAARejectedRenewalRetried: a renewal refused because the customer's CAA records name another
// CA is retried by itself too; once the records allow this CA again, the next attempt renews.
func TestCAARejectedRenewalRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	rr, err := dns.NewRR(`example.com. 60 IN CAA 0 issue "letsencrypt.org"`)
	if err != nil {
		t.Fatal(err)
	}
	e.zone.Add(rr)
	e.advance(170*day+time.Minute, nil) // the re-issue starts at day 170 and meets the CAA record
	c := e.certificate(cert)
	if c.GetState() != stHosted || c.GetRenewalStatus() != renewalFailed || c.GetRetryTime() == nil ||
		c.GetCurrentApplication().GetRejectionReason() != lifecyclev1.RejectionReason_REJECTION_REASON_CAA {
		t.Fatalf("after the CAA refusal: %s, %s, retry %v; want HOSTED, its renewal failed for CAA with a retry planned",
			c.GetState(), c.GetCurrentApplication().GetRejectionReason(), c.GetRetryTime())
	}
	e.advance(day, nil)
	e.zone.Remove("example.com.", dns.TypeCAA)
	e.advance(day, nil)
	c = e.certificate(cert)
	if c.GetState() != stHosted || c.GetRenewalRetries() != 0 {
		t.Fatalf("after the CAA record was removed: %s, %d retries; want HOSTED, renewed", c.GetState(), c.GetRenewalRetries())
	}
	if cases := e.cases(e.aSupport); len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("cases = %v, want the one case RESOLVED", cases)
	}
}
