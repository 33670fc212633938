package lifecycle_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/ids"
)

// deployment is a valid report of bundle b's current certificate on target.
func (e *env) deployment(b *lifecyclev1.Bundle, target string) *lifecyclev1.RecordDeploymentRequest {
	return &lifecyclev1.RecordDeploymentRequest{
		BundleId: b.GetBundleId(), IssuanceId: b.GetCurrentIssuance().GetIssuanceId(), Target: target, Host: "web1.example.net",
		CertificatePath: "/etc/ssl/shop/fullchain.pem", PrivateKeyPath: "/etc/ssl/shop/privkey.pem",
		DeployTime: timestamppb.New(e.clk.Now()), Success: true,
	}
}

// TestRecordDeploymentRejectsBadInput: every field is checked, with the right code and the field
// named; an unknown bundle or issuance is NotFound, another bundle's certificate is refused, and
// another account's bundle is NotFound.
func TestRecordDeploymentRejectsBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	b = e.bundle(b.GetBundleId())
	other, records := e.hostedDV()
	e.publish(records)
	e.tick()
	other = e.bundle(other.GetBundleId())
	if other.GetCurrentIssuance().GetIssuanceId() == "" {
		t.Fatal("second bundle has no certificate")
	}
	now := e.clk.Now()
	for _, tc := range []struct {
		name   string
		change func(r *lifecyclev1.RecordDeploymentRequest)
		code   codes.Code
		field  string
	}{
		{"no bundle", func(r *lifecyclev1.RecordDeploymentRequest) { r.BundleId = "" }, codes.InvalidArgument, "bundle_id"},
		{"malformed bundle", func(r *lifecyclev1.RecordDeploymentRequest) { r.BundleId = "bdl_x" }, codes.InvalidArgument, "bundle_id"},
		{"unknown bundle", func(r *lifecyclev1.RecordDeploymentRequest) { r.BundleId = ids.New(ids.Bundle, now) }, codes.NotFound, "bundle"},
		{"no issuance", func(r *lifecyclev1.RecordDeploymentRequest) { r.IssuanceId = "" }, codes.InvalidArgument, "issuance_id"},
		{"unknown issuance", func(r *lifecyclev1.RecordDeploymentRequest) { r.IssuanceId = ids.New(ids.Issuance, now) }, codes.NotFound, "issuance"},
		{"issuance of another bundle", func(r *lifecyclev1.RecordDeploymentRequest) {
			r.IssuanceId = other.GetCurrentIssuance().GetIssuanceId()
		},
			codes.InvalidArgument, "issuance_id"},
		{"no target", func(r *lifecyclev1.RecordDeploymentRequest) { r.Target = "" }, codes.InvalidArgument, "target"},
		{"target with a space", func(r *lifecyclev1.RecordDeploymentRequest) { r.Target = "web 1" }, codes.InvalidArgument, "target"},
		{"target too long", func(r *lifecyclev1.RecordDeploymentRequest) { r.Target = strings.Repeat("a", 65) }, codes.InvalidArgument, "target"},
		{"no host", func(r *lifecyclev1.RecordDeploymentRequest) { r.Host = "" }, codes.InvalidArgument, "host"},
		{"host with a newline", func(r *lifecyclev1.RecordDeploymentRequest) { r.Host = "a\nb" }, codes.InvalidArgument, "host"},
		{"relative certificate path", func(r *lifecyclev1.RecordDeploymentRequest) { r.CertificatePath = "fullchain.pem" }, codes.InvalidArgument, "certificate_path"},
		{"no key path", func(r *lifecyclev1.RecordDeploymentRequest) { r.PrivateKeyPath = "" }, codes.InvalidArgument, "private_key_path"},
		{"no deploy time", func(r *lifecyclev1.RecordDeploymentRequest) { r.DeployTime = nil }, codes.InvalidArgument, "deploy_time"},
		{"deploy time in the future", func(r *lifecyclev1.RecordDeploymentRequest) { r.DeployTime = timestamppb.New(now.Add(time.Hour)) },
			codes.InvalidArgument, "deploy_time"},
		{"failure without error", func(r *lifecyclev1.RecordDeploymentRequest) { r.Success = false }, codes.InvalidArgument, "error"},
		{"success with error", func(r *lifecyclev1.RecordDeploymentRequest) { r.Error = "boom" }, codes.InvalidArgument, "error"},
		{"error too long", func(r *lifecyclev1.RecordDeploymentRequest) { r.Success, r.Error = false, strings.Repeat("x", 2049) },
			codes.InvalidArgument, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := e.deployment(b, "web1")
			tc.change(req)
			_, err := e.a.RecordDeployment(e.ctx, req)
			if got := status.Code(err); got != tc.code || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("RecordDeployment: %v; want %s naming %q", err, tc.code, tc.field)
			}
		})
	}
	// B reporting on A's bundle: NotFound, as if it did not exist.
	if _, err := e.b.RecordDeployment(e.ctx, e.deployment(b, "web1")); status.Code(err) != codes.NotFound {
		t.Fatalf("B's report on A's bundle: %v; want NotFound", err)
	}
	if got := e.bundle(b.GetBundleId()).GetDeployments(); len(got) != 0 {
		t.Fatalf("refused reports were stored: %v", got)
	}
}

// TestRecordDeploymentShownInGetBundle: GetBundle shows the latest report of each target, with the
// certificate's serial; a later report of a target replaces the earlier in the answer.
func TestRecordDeploymentShownInGetBundle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	b = e.bundle(b.GetBundleId())
	fail := e.deployment(b, "web2")
	fail.Success, fail.Error = false, "reload command: exit status 1: nginx: [emerg] bad config"
	for _, req := range []*lifecyclev1.RecordDeploymentRequest{e.deployment(b, "web1"), fail} {
		if _, err := e.a.RecordDeployment(e.ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Advance(time.Minute)
	fixed := e.deployment(b, "web2")
	if _, err := e.a.RecordDeployment(e.ctx, fixed); err != nil {
		t.Fatal(err)
	}
	got := e.bundle(b.GetBundleId()).GetDeployments()
	if len(got) != 2 {
		t.Fatalf("GetBundle shows %d deployments, want 2 (one per target): %v", len(got), got)
	}
	for i, want := range []string{"web1", "web2"} {
		d := got[i]
		if d.GetTarget() != want || !d.GetSuccess() || d.GetSerialNumber() != b.GetCurrentIssuance().GetSerialNumber() ||
			d.GetIssuanceId() != b.GetCurrentIssuance().GetIssuanceId() || d.GetCertificateId() != b.GetCurrentCertificateId() {
			t.Errorf("deployment %d: %v; want target %s, success, serial %s", i, d, want, b.GetCurrentIssuance().GetSerialNumber())
		}
	}
	if got[1].GetDeployTime().AsTime() != e.clk.Now() {
		t.Errorf("web2's deploy time %s, want the later report's %s", got[1].GetDeployTime().AsTime(), e.clk.Now())
	}
}

// TestUpdateBundleExpectedTargets: the targets are validated, kept by an update that does not name
// them, and cleared on request; renew_before is kept by an update of the targets alone.
func TestUpdateBundleExpectedTargets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b, _ := e.hosting()
	id := b.GetBundleId()
	for _, tc := range []struct {
		name string
		req  *lifecyclev1.UpdateBundleRequest
	}{
		{"bad name", &lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: []string{"web/1"}}},
		{"empty name", &lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: []string{""}}},
		{"duplicate", &lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: []string{"web1", "web1"}}},
		{"too many", &lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: strings.Split(strings.Repeat("a,", 33)+"b", ",")}},
		{"set and clear", &lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: []string{"web1"}, ClearExpectedDeploymentTargets: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.UpdateBundle(e.ctx, tc.req)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "expected_deployment_targets") {
				t.Fatalf("UpdateBundle: %v; want InvalidArgument naming expected_deployment_targets", err)
			}
		})
	}
	e.renewBefore(id, durationpb.New(10*24*time.Hour))
	got := e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: id, ExpectedDeploymentTargets: []string{"web2", "web1"}})
	if got.GetRenewBefore().AsDuration() != 10*24*time.Hour {
		t.Fatalf("renew_before %s after an update of the targets alone, want it kept (240h)", got.GetRenewBefore().AsDuration())
	}
	if want := []string{"web1", "web2"}; strings.Join(got.GetExpectedDeploymentTargets(), ",") != strings.Join(want, ",") {
		t.Fatalf("targets %v, want %v", got.GetExpectedDeploymentTargets(), want)
	}
	if got := e.bundle(id).GetExpectedDeploymentTargets(); len(got) != 2 {
		t.Fatalf("GetBundle shows targets %v, want 2", got)
	}
	got = e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: id, ClearExpectedDeploymentTargets: true})
	if len(got.GetExpectedDeploymentTargets()) != 0 {
		t.Fatalf("targets after clearing: %v", got.GetExpectedDeploymentTargets())
	}
}

// TestDeploymentOverdue: a bundle expecting web1 and web2 whose certificate reached only web1 is
// reported once the deploy deadline (24 h by default) has passed since the issuance, not before: a
// DEPLOYMENT_OVERDUE event on the instance and one urgent DEPLOYMENT_MISSING case naming web2;
// later ticks open no second case. A bundle deployed everywhere in time is never reported. For a
// bundle whose targets are named after its certificate was issued, the deadline runs from then.
func TestDeploymentOverdue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	late, _ := e.hosting()
	late = e.bundle(late.GetBundleId())
	done, records := e.hostedDV()
	e.publish(records)
	e.tick()
	done = e.bundle(done.GetBundleId())
	named, records := e.hostedDV()
	e.publish(records)
	e.tick()
	named = e.bundle(named.GetBundleId())
	for _, b := range []*lifecyclev1.Bundle{late, done} {
		e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: b.GetBundleId(), ExpectedDeploymentTargets: []string{"web1", "web2"}})
		if _, err := e.a.RecordDeployment(e.ctx, e.deployment(b, "web1")); err != nil {
			t.Fatal(err)
		}
	}
	// A failed report does not count as deployed.
	failed := e.deployment(late, "web2")
	failed.Success, failed.Error = false, "reload command timed out after 30s"
	if _, err := e.a.RecordDeployment(e.ctx, failed); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.RecordDeployment(e.ctx, e.deployment(done, "web2")); err != nil {
		t.Fatal(err)
	}
	overdue := func(b *lifecyclev1.Bundle) int {
		n := 0
		for _, ev := range e.history(b.GetCurrentCertificateId()) {
			if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_DEPLOYMENT_OVERDUE {
				n++
			}
		}
		return n
	}
	missingCases := func() []*lifecyclev1.SupportCase {
		var out []*lifecyclev1.SupportCase
		for _, c := range e.cases(e.aSupport) {
			if c.GetKind() == lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_DEPLOYMENT_MISSING {
				out = append(out, c)
			}
		}
		return out
	}
	e.clk.Advance(23 * time.Hour)
	if st := e.tick(); st.DeploymentsOverdue != 0 || overdue(late) != 0 || len(missingCases()) != 0 {
		t.Fatalf("reported before the deadline: %+v", st)
	}
	// named's targets come 23 h after its issuance: its deadline is 24 h from now.
	e.updateBundle(&lifecyclev1.UpdateBundleRequest{BundleId: named.GetBundleId(), ExpectedDeploymentTargets: []string{"web3"}})
	e.clk.Advance(2 * time.Hour)
	if st := e.tick(); st.DeploymentsOverdue != 1 {
		t.Fatalf("tick past the deadline reported %d overdue, want 1", st.DeploymentsOverdue)
	}
	e.clk.Advance(time.Hour)
	e.tick()
	if n := overdue(late); n != 1 {
		t.Fatalf("%d DEPLOYMENT_OVERDUE events, want 1", n)
	}
	if n := overdue(done); n != 0 {
		t.Fatalf("the bundle deployed everywhere got %d DEPLOYMENT_OVERDUE events", n)
	}
	cases := missingCases()
	if len(cases) != 1 {
		t.Fatalf("%d DEPLOYMENT_MISSING cases, want 1", len(cases))
	}
	if c := cases[0]; !c.GetUrgent() || c.GetBundleId() != late.GetBundleId() || !strings.Contains(c.GetSummary(), "web2") ||
		strings.Contains(c.GetSummary(), "web1") {
		t.Fatalf("case %v: want urgent, on %s, naming web2 only", c, late.GetBundleId())
	}
	if n := overdue(named); n != 0 {
		t.Fatalf("the bundle whose targets were named 3 h ago got %d DEPLOYMENT_OVERDUE events", n)
	}
	e.clk.Advance(22 * time.Hour) // 25 h after named's targets
	if st := e.tick(); st.DeploymentsOverdue != 1 || overdue(named) != 1 || len(missingCases()) != 2 {
		t.Fatalf("25 h after the targets were named: %+v, %d events, %d cases; want 1, 1, 2", st, overdue(named), len(missingCases()))
	}
}
