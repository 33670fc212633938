package lifecycle_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

// renewBefore sets a bundle's renew_before as customer A (nil: unset).
func (e *env) renewBefore(bundleID string, d *durationpb.Duration) *lifecyclev1.Bundle {
	e.t.Helper()
	resp, err := e.a.UpdateBundle(e.ctx, &lifecyclev1.UpdateBundleRequest{BundleId: bundleID, RenewBefore: d})
	if err != nil {
		e.t.Fatalf("UpdateBundle(renew_before %v): %v", d.AsDuration(), err)
	}
	return resp.GetBundle()
}

// TestUpdateBundleRenewBefore: renew_before moves the hosted certificate's renewal time at once,
// the renewal happens then, the setting carries over to the next certificate, and zero or unset
// restores the default (30 days for 200-day certificates).
func TestUpdateBundleRenewBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	iss := e.certificate(cert).GetCurrentIssuance()
	notAfter := iss.GetNotAfter().AsTime()
	renewAt := func() time.Time { return e.certificate(cert).GetRenewTime().AsTime() }
	if got := renewAt(); !got.Equal(notAfter.Add(-30 * day)) {
		t.Fatalf("default renew_time is %s before not_after, want 30 days", notAfter.Sub(got))
	}

	for _, tc := range []struct {
		name string
		d    *durationpb.Duration
		want time.Duration // before not_after
	}{
		{"three hours (more than twice the CA's 1-hour DNS timeout)", durationpb.New(3 * time.Hour), 3 * time.Hour},
		{"60 days (the most)", durationpb.New(60 * day), 60 * day},
		{"zero restores the default", durationpb.New(0), 30 * day},
		{"45 days", durationpb.New(45 * day), 45 * day},
		{"unset restores the default", nil, 30 * day},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			got := e.renewBefore(b.GetBundleId(), tc.d)
			if tc.want == 30*day && got.GetRenewBefore() != nil || tc.want != 30*day && got.GetRenewBefore().AsDuration() != tc.want {
				t.Errorf("bundle renew_before = %v, want %v (unset for the default)", got.GetRenewBefore(), tc.want)
			}
			if at := got.GetCertificates()[0].GetRenewTime().AsTime(); !at.Equal(notAfter.Add(-tc.want)) {
				t.Errorf("UpdateBundle shows renew_time %s before not_after, want %s", notAfter.Sub(at), tc.want)
			}
			if at := renewAt(); !at.Equal(notAfter.Add(-tc.want)) {
				t.Errorf("GetCertificate shows renew_time %s before not_after, want %s", notAfter.Sub(at), tc.want)
			}
		})
	}

	// The renewal happens at the new time: not a minute before, and at it.
	e.renewBefore(b.GetBundleId(), durationpb.New(60*day))
	e.advance(notAfter.Add(-60*day).Sub(e.clk.Now())-time.Minute, nil)
	if c := e.certificate(cert); c.GetCurrentIssuance().GetIssuanceId() != iss.GetIssuanceId() ||
		countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED) != 0 {
		t.Fatal("the renewal started before the renewal time")
	}
	e.advance(2*time.Minute, nil)
	c := e.certificate(cert)
	next := c.GetCurrentIssuance()
	if c.GetState() != stHosted || next.GetIssuanceId() == iss.GetIssuanceId() {
		t.Fatalf("a minute after the renewal time: %s with issuance %s, want HOSTED with a new certificate", c.GetState(), next.GetIssuanceId())
	}
	if d := next.GetNotBefore().AsTime().Sub(notAfter.Add(-60 * day)); d < 0 || d > time.Minute {
		t.Errorf("the successor starts %s after the renewal time, want within the minute", d)
	}
	// The setting carries over to the successor's renewal.
	if at := c.GetRenewTime().AsTime(); !at.Equal(next.GetNotAfter().AsTime().Add(-60 * day)) {
		t.Errorf("successor renews %s before its not_after, want 60 days", next.GetNotAfter().AsTime().Sub(at))
	}
}

func TestUpdateBundleInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	cert := b.GetCertificates()[0].GetCertificateId()
	before := e.certificate(cert).GetRenewTime().AsTime()
	tests := []struct {
		name   string
		client lifecyclev1.LifecycleServiceClient
		req    *lifecyclev1.UpdateBundleRequest
		code   codes.Code
		field  string
	}{
		{"30 minutes", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(30 * time.Minute)}, codes.InvalidArgument, "renew_before"},
		{"2 hours: not more than twice the CA's DNS timeout (1 h)", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(2 * time.Hour)}, codes.InvalidArgument, "renew_before"},
		{"61 days", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(61 * day)}, codes.InvalidArgument, "renew_before"},
		{"negative", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(-10 * day)}, codes.InvalidArgument, "renew_before"},
		{"malformed duration", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: &durationpb.Duration{Seconds: 86400, Nanos: -1}}, codes.InvalidArgument, "renew_before"},
		{"malformed bundle_id", e.a, &lifecyclev1.UpdateBundleRequest{BundleId: "bdl_1", RenewBefore: durationpb.New(10 * day)}, codes.InvalidArgument, "bundle_id"},
		{"another account", e.b, &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(10 * day)}, codes.NotFound, ""},
		{"support engineer", lifecyclev1.NewLifecycleServiceClient(e.supportConn), &lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), RenewBefore: durationpb.New(10 * day)}, codes.PermissionDenied, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.UpdateBundle(e.ctx, tc.req)
			if tc.code == codes.InvalidArgument {
				grpctest.WantInvalidArgument(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("UpdateBundle = %v, want %s", err, tc.code)
			}
		})
	}
	if got := e.bundle(b.GetBundleId()); got.GetRenewBefore() != nil || !e.certificate(cert).GetRenewTime().AsTime().Equal(before) {
		t.Errorf("refused updates changed the bundle: renew_before %v, renew_time moved by %s", got.GetRenewBefore(),
			e.certificate(cert).GetRenewTime().AsTime().Sub(before))
	}
}
