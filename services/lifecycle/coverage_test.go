package lifecycle_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

const (
	renewalPending = lifecyclev1.RenewalStatus_RENEWAL_STATUS_PENDING
	renewalRenewed = lifecyclev1.RenewalStatus_RENEWAL_STATUS_RENEWED
	hostingActive  = lifecyclev1.HostingStatus_HOSTING_STATUS_ACTIVE
)

// reissue calls ReissueCertificate as customer A.
func (e *env) reissue(certID string) (*lifecyclev1.ReissueCertificateResponse, error) {
	return e.a.ReissueCertificate(e.ctx, &lifecyclev1.ReissueCertificateRequest{CertificateId: certID})
}

// TestReissueCoversEveryPaidDay is the time-travel run of a 3-year subscription without hosting,
// with the default CA's 200-day certificates: the customer re-issues each certificate when reminded
// (30 days before it expires) and, when a certificate reaches its instance's year end, activates
// and applies for the next instance. Every instance's 365 paid days are covered, 1,095 in all; the
// instance stays ISSUED while each re-issue is in flight, and the bundle's current certificate
// changes only when the successor is issued.
func TestReissueCoversEveryPaidDay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 3, false)
	certs := b.GetCertificates()
	c := e.issue(application(certs[0].GetCertificateId(), "shop.example.com"))
	t0 := c.GetCurrentIssuance().GetNotBefore().AsTime()
	if c.GetDaysPaid() != 365 || c.GetDaysCovered() != 200 {
		t.Errorf("after the first certificate: %d days paid, %d covered; want 365 and 200", c.GetDaysPaid(), c.GetDaysCovered())
	}
	reissues := 0
	for seq := 0; ; {
		cur := e.certificate(certs[seq].GetCertificateId())
		notAfter := cur.GetCurrentIssuance().GetNotAfter().AsTime()
		e.clk.Advance(notAfter.Add(-30 * day).Sub(e.clk.Now())) // the reminder
		e.tick()
		if !notAfter.Before(cur.GetCoverageEndTime().AsTime()) {
			// The certificate runs to the end of its year: the next year's instance takes over.
			if seq == len(certs)-1 {
				break
			}
			seq++
			next := certs[seq].GetCertificateId()
			if _, err := e.activate(e.a, next); err != nil {
				t.Fatalf("ActivateCertificate(instance %d): %v", seq+1, err)
			}
			e.issue(application(next, "shop.example.com"))
			continue
		}
		before := e.bundle(b.GetBundleId()).GetCurrentIssuance().GetIssuanceId()
		resp, err := e.reissue(cur.GetCertificateId())
		if err != nil {
			t.Fatalf("ReissueCertificate at day %.0f: %v", days(t0, e.clk.Now()), err)
		}
		if got := resp.GetCertificate(); got.GetState() != stIssued || got.GetRenewalStatus() != renewalPending ||
			got.GetCurrentIssuance().GetIssuanceId() != cur.GetCurrentIssuance().GetIssuanceId() {
			t.Fatalf("re-issue in flight: %s, renewal %s, issuance %s; want ISSUED, PENDING, the certificate in use",
				got.GetState(), got.GetRenewalStatus(), got.GetCurrentIssuance().GetIssuanceId())
		}
		if _, err := e.reissue(cur.GetCertificateId()); err == nil {
			t.Fatal("a second ReissueCertificate while one is in flight was accepted")
		} else {
			wantRefused(t, "a second re-issue in flight", err, codes.FailedPrecondition, "in flight")
		}
		if got := e.bundle(b.GetBundleId()).GetCurrentIssuance().GetIssuanceId(); got != before {
			t.Errorf("the bundle's current certificate changed to %s while the re-issue was in flight", got)
		}
		e.tick()
		reissued := e.certificate(cur.GetCertificateId())
		if reissued.GetState() != stIssued || reissued.GetCurrentIssuance().GetIssuanceId() == cur.GetCurrentIssuance().GetIssuanceId() {
			t.Fatalf("after the re-issue: %s with issuance %s; want ISSUED with a new certificate", reissued.GetState(),
				reissued.GetCurrentIssuance().GetIssuanceId())
		}
		if got := e.bundle(b.GetBundleId()); got.GetCurrentCertificateId() != cur.GetCertificateId() ||
			got.GetCurrentIssuance().GetIssuanceId() != reissued.GetCurrentIssuance().GetIssuanceId() {
			t.Errorf("the bundle's current certificate is %s/%s, want the re-issued one", got.GetCurrentCertificateId(), got.GetCurrentIssuance().GetIssuanceId())
		}
		reissues++
	}
	e.advance(31*day, nil)
	total := 0
	for i, c := range e.bundle(b.GetBundleId()).GetCertificates() {
		if c.GetDaysPaid() != 365 || c.GetDaysCovered() != 365 {
			t.Errorf("instance %d: %d days paid, %d covered; want 365 of 365", i+1, c.GetDaysPaid(), c.GetDaysCovered())
		}
		total += int(c.GetDaysCovered())
		if c.GetState() != stExpired {
			t.Errorf("instance %d is %s at the end of the subscription, want EXPIRED", i+1, c.GetState())
		}
	}
	if total != 1095 || reissues < 4 {
		t.Errorf("%d days covered with %d re-issues, want 1095 with at least 4", total, reissues)
	}
	t.Logf("1095 paid days covered by %d certificates (%d re-issues)", reissues+3, reissues)
}

// TestReissueRejectedKeepsState: a re-issue rejected because the record is gone leaves the instance
// ISSUED with its certificate in use, the failure beside it (renewal status FAILED and the case);
// when that certificate expires the instance becomes EXPIRED; putting the record back and retrying
// re-issues it within its year (EXPIRED → ISSUED).
func TestReissueRejectedKeepsState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	b := e.buy("dv-single", dv, single, 1, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	sub := e.submit(application(cert, "shop.example.com"))
	e.publish(sub.GetInstructions())
	e.tick()
	inUse := e.certificate(cert).GetCurrentIssuance()
	e.clk.Advance(150 * day)
	e.withhold(sub.GetInstructions())
	if _, err := e.reissue(cert); err != nil {
		t.Fatalf("ReissueCertificate: %v", err)
	}
	e.advance(2*time.Hour, nil)
	c := e.certificate(cert)
	if c.GetState() != stIssued || c.GetRenewalStatus() != renewalFailed || c.GetRenewalSupportCaseId() == "" ||
		c.GetCurrentIssuance().GetIssuanceId() != inUse.GetIssuanceId() {
		t.Fatalf("after the rejected re-issue: %s, renewal %s, case %q, issuance %s; want ISSUED, FAILED, a case, the certificate in use",
			c.GetState(), c.GetRenewalStatus(), c.GetRenewalSupportCaseId(), c.GetCurrentIssuance().GetIssuanceId())
	}
	if n := countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_RENEWAL_FAILED); n != 1 {
		t.Errorf("%d RENEWAL_FAILED events, want 1", n)
	}
	if got := e.bundle(b.GetBundleId()).GetCurrentIssuance().GetIssuanceId(); got != inUse.GetIssuanceId() {
		t.Errorf("the bundle's current certificate is %q, want the one still in use", got)
	}

	e.advance(60*day, nil) // past the certificate's end (day 200)
	c = e.certificate(cert)
	if c.GetState() != stExpired || c.GetRenewalStatus() != renewalFailed {
		t.Fatalf("after the certificate ended: %s, renewal %s; want EXPIRED, FAILED", c.GetState(), c.GetRenewalStatus())
	}
	if bs := e.bundle(b.GetBundleId()); bs.GetCurrentCertificateId() != "" {
		t.Errorf("the bundle's current certificate is %q after the last one expired, want none", bs.GetCurrentCertificateId())
	}
	if n := countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_EXPIRED); n != 1 {
		t.Errorf("%d EXPIRED events, want 1", n)
	}

	e.publish(sub.GetInstructions())
	if _, err := e.a.RetryApplication(e.ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: cert}); err != nil {
		t.Fatalf("RetryApplication: %v", err)
	}
	e.tick()
	c = e.certificate(cert)
	if c.GetState() != stIssued || c.GetRenewalStatus() != lifecyclev1.RenewalStatus_RENEWAL_STATUS_UNSPECIFIED ||
		!c.GetCurrentIssuance().GetNotAfter().AsTime().Equal(c.GetCoverageEndTime().AsTime()) {
		t.Fatalf("after the retry: %s, renewal %s, ends %s; want ISSUED to the end of the year %s", c.GetState(),
			c.GetRenewalStatus(), c.GetCurrentIssuance().GetNotAfter().AsTime(), c.GetCoverageEndTime().AsTime())
	}
	if cases := e.cases(e.aSupport); len(cases) != 1 || cases[0].GetStatus() != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED {
		t.Errorf("cases = %v, want the one case RESOLVED", cases)
	}
}

// TestReissueRefused: each way ReissueCertificate can be asked wrongly gets its code and a message
// naming what is wrong.
func TestReissueRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	plain := e.buy("dv-single", dv, single, 1, 2, false)
	issued := plain.GetCertificates()[0].GetCertificateId()
	e.issue(application(issued, "shop.example.com"))
	hosted, _ := e.hosting()
	pendingCert := e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId()
	for _, tc := range []struct {
		name    string
		client  lifecyclev1.LifecycleServiceClient
		req     *lifecyclev1.ReissueCertificateRequest
		code    codes.Code
		mention string
	}{
		{"malformed id", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: "nope"}, codes.InvalidArgument, "certificate_id"},
		{"another account's", e.b, &lifecyclev1.ReissueCertificateRequest{CertificateId: issued}, codes.NotFound, issued},
		{"hosted bundle", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: hosted.GetCertificates()[0].GetCertificateId()},
			codes.FailedPrecondition, "hosted"},
		{"no certificate yet", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: pendingCert}, codes.FailedPrecondition, "PENDING_APPLICATION"},
		{"not activated", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: plain.GetCertificates()[1].GetCertificateId()},
			codes.FailedPrecondition, "NOT_ACTIVATED"},
		{"CSR and key algorithm", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: issued, CsrPem: "x",
			KeyAlgorithm: lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048}, codes.InvalidArgument, "key_algorithm"},
		{"CSR that does not parse", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: issued, CsrPem: "x"},
			codes.InvalidArgument, "csr_pem"},
		{"unknown key algorithm", e.a, &lifecyclev1.ReissueCertificateRequest{CertificateId: issued, KeyAlgorithm: 99},
			codes.InvalidArgument, "key_algorithm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.ReissueCertificate(e.ctx, tc.req)
			wantRefused(t, "ReissueCertificate", err, tc.code, tc.mention)
		})
	}
	// After the instance's year, it is over: the next instance is the way on.
	e.clk.Advance(366 * day)
	_, err := e.reissue(issued)
	wantRefused(t, "a re-issue after the year ended", err, codes.FailedPrecondition, "year ended")
}

// TestEnableHostingAfterFirstCertificate is the time-travel run of a 2-year bundle bought without
// hosting (200-day certificates): hosting enabled after its first certificate makes that
// certificate HOSTED with a renewal planned, and from then on the service renews it by itself,
// activating the second year, to the end of the subscription: every paid day covered.
func TestEnableHostingAfterFirstCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 2, false)
	first := b.GetCertificates()[0].GetCertificateId()
	e.issue(application(first, "shop.example.com"))
	e.clk.Advance(20 * day)
	resp, err := e.a.EnableHosting(e.ctx, &lifecyclev1.EnableHostingRequest{BundleId: b.GetBundleId()})
	if err != nil {
		t.Fatalf("EnableHosting: %v", err)
	}
	got := resp.GetBundle()
	c := got.GetCertificates()[0]
	if !got.GetHosting() || got.GetHostingStatus() != hostingActive || c.GetState() != stHosted || c.GetRenewTime() == nil {
		t.Fatalf("after EnableHosting: hosting %v %s, instance %s, renew_time %v; want hosted, ACTIVE, HOSTED with a renewal planned",
			got.GetHosting(), got.GetHostingStatus(), c.GetState(), c.GetRenewTime())
	}
	if again, err := e.a.EnableHosting(e.ctx, &lifecyclev1.EnableHostingRequest{BundleId: b.GetBundleId()}); err != nil ||
		again.GetBundle().GetHostingStatus() != hostingActive {
		t.Errorf("EnableHosting again = %v, %v; want the bundle unchanged", again.GetBundle().GetHostingStatus(), err)
	}
	if n := countEvents(e.history(first), lifecyclev1.EventType_EVENT_TYPE_HOSTING_ENABLED); n != 1 {
		t.Errorf("%d HOSTING_ENABLED events, want 1", n)
	}
	calls := e.ca.calls.Load()
	e.advance(2*365*day, nil)
	end := e.bundle(b.GetBundleId())
	if end.GetHostingStatus() != lifecyclev1.HostingStatus_HOSTING_STATUS_ENDED {
		t.Errorf("hosting %s at the end of the subscription, want ENDED", end.GetHostingStatus())
	}
	for i, c := range end.GetCertificates() {
		if c.GetDaysCovered() != 365 {
			t.Errorf("instance %d: %d days covered, want 365", i+1, c.GetDaysCovered())
		}
	}
	if n := e.ca.calls.Load() - calls; n == 0 {
		t.Error("the CA was never called after hosting was enabled")
	}
	if n := countEvents(e.history(end.GetCertificates()[1].GetCertificateId()), lifecyclev1.EventType_EVENT_TYPE_ACTIVATED); n != 1 {
		t.Errorf("instance 2 was activated %d times, want once, by the ticker", n)
	}
}

// TestEnableHostingBeforeFirstCertificate: hosting enabled while the first application is at the
// CA makes the bundle WAITING; its certificate is HOSTED when issued. Refusals name the cause.
func TestEnableHostingBeforeFirstCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-single", dv, single, 1, 3, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	sub := e.submit(application(cert, "shop.example.com"))
	resp, err := e.a.EnableHosting(e.ctx, &lifecyclev1.EnableHostingRequest{BundleId: b.GetBundleId()})
	if err != nil {
		t.Fatalf("EnableHosting: %v", err)
	}
	if hs := resp.GetBundle().GetHostingStatus(); hs != lifecyclev1.HostingStatus_HOSTING_STATUS_WAITING {
		t.Errorf("hosting status %s before the first certificate, want WAITING", hs)
	}
	e.publish(sub.GetInstructions())
	e.tick()
	if c := e.certificate(cert); c.GetState() != stHosted || c.GetRenewTime() == nil {
		t.Errorf("first certificate: %s, renew_time %v; want HOSTED with a renewal planned", c.GetState(), c.GetRenewTime())
	}

	oneYear := e.buy("dv-single", dv, single, 1, 1, false)
	cancelled := e.buy("dv-single", dv, single, 1, 2, false)
	if _, err := e.svc.CancelBundle(e.ctx, &lifecyclev1.CancelBundleRequest{BundleId: cancelled.GetBundleId(),
		AccountId: e.accA, OrderId: cancelled.GetOrderId()}); err != nil {
		t.Fatalf("CancelBundle: %v", err)
	}
	lapsed := e.buy("dv-single", dv, single, 1, 2, false)
	e.issue(application(lapsed.GetCertificates()[0].GetCertificateId(), "lapsed.example.com"))
	e.advance(201*day, nil) // its certificate expired; instance 2 was never activated
	for _, tc := range []struct {
		name    string
		client  lifecyclev1.LifecycleServiceClient
		id      string
		code    codes.Code
		mention string
	}{
		{"malformed id", e.a, "bdl_nope", codes.InvalidArgument, "bundle_id"},
		{"another account's", e.b, b.GetBundleId(), codes.NotFound, b.GetBundleId()},
		{"1-year bundle", e.a, oneYear.GetBundleId(), codes.FailedPrecondition, "2 or 3 years"},
		{"cancelled bundle", e.a, cancelled.GetBundleId(), codes.FailedPrecondition, "cancelled"},
		{"nothing in use or waiting", e.a, lapsed.GetBundleId(), codes.FailedPrecondition, "no certificate in use"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.EnableHosting(e.ctx, &lifecyclev1.EnableHostingRequest{BundleId: tc.id})
			wantRefused(t, "EnableHosting", err, tc.code, tc.mention)
		})
	}
}

// TestCancelBundle: the order service's credential cancels a bundle nobody applied for (every
// instance CANCELLED, once: a second call changes nothing), and is refused for a bundle applied for,
// for another order's or account's bundle; a customer may not call it.
func TestCancelBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	unused := e.buy("dv-single", dv, single, 1, 3, true)
	used := e.buy("dv-single", dv, single, 1, 2, false)
	e.submit(application(used.GetCertificates()[0].GetCertificateId(), "used.example.com"))
	cancel := func(c lifecyclev1.LifecycleServiceClient, b *lifecyclev1.Bundle, account, order string) (*lifecyclev1.Bundle, error) {
		resp, err := c.CancelBundle(e.ctx, &lifecyclev1.CancelBundleRequest{BundleId: b.GetBundleId(), AccountId: account, OrderId: order})
		return resp.GetBundle(), err
	}
	for range 2 {
		got, err := cancel(e.svc, unused, e.accA, unused.GetOrderId())
		if err != nil {
			t.Fatalf("CancelBundle: %v", err)
		}
		for _, c := range got.GetCertificates() {
			if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_CANCELLED {
				t.Errorf("instance %d is %s, want CANCELLED", c.GetSequence(), c.GetState())
			}
		}
	}
	if n := countEvents(e.history(unused.GetCertificates()[0].GetCertificateId()), lifecyclev1.EventType_EVENT_TYPE_CANCELLED); n != 1 {
		t.Errorf("%d CANCELLED events after two calls, want 1", n)
	}
	_, err := cancel(e.svc, used, e.accA, used.GetOrderId())
	wantRefused(t, "cancelling a bundle applied for", err, codes.FailedPrecondition, "was applied for")
	_, err = cancel(e.svc, used, e.accB, used.GetOrderId())
	wantRefused(t, "cancelling with another account", err, codes.NotFound, used.GetBundleId())
	_, err = cancel(e.svc, used, e.accA, unused.GetOrderId())
	wantRefused(t, "cancelling with another order", err, codes.NotFound, used.GetBundleId())
	_, err = cancel(e.a, used, e.accA, used.GetOrderId())
	wantRefused(t, "a customer cancelling", err, codes.PermissionDenied, "")
	if got := e.states(used.GetBundleId()); got[0] != lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING {
		t.Errorf("the refused cancellation left %v", got)
	}
}
