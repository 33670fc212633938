package lifecycle_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// TestUpdateApplicationTemplate: a hosted customer adds a name and changes the contact for future
// renewals: the response holds the records to publish for the new name, GetBundle shows the
// template, the certificate in use is unchanged, and the next renewal (asked for at once) applies
// with the new names and contact. Bad input is refused naming the field.
func TestUpdateApplicationTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.buy("dv-multi", dv, multi, 2, 2, true)
	cert := b.GetCertificates()[0].GetCertificateId()
	first := e.issue(application(cert, "a.example.com"))
	newContact := &lifecyclev1.Contact{Name: "New Ops", Email: "new-ops@example.com"}
	resp, err := e.a.UpdateApplicationTemplate(e.ctx, &lifecyclev1.UpdateApplicationTemplateRequest{
		BundleId: b.GetBundleId(), Domains: []string{"a.example.com", "B.example.com"}, Contact: newContact,
	})
	if err != nil {
		t.Fatalf("UpdateApplicationTemplate: %v", err)
	}
	tmpl := resp.GetBundle().GetApplicationTemplate()
	if !slices.Equal(tmpl.GetDomains(), []string{"a.example.com", "b.example.com"}) || tmpl.GetContact().GetEmail() != newContact.GetEmail() {
		t.Errorf("template %v %v, want both names (normalized) and the new contact", tmpl.GetDomains(), tmpl.GetContact())
	}
	if len(resp.GetInstructions()) != 2 {
		t.Errorf("instructions %v, want a record per name", resp.GetInstructions())
	}
	if c := e.certificate(cert); c.GetCurrentIssuance().GetIssuanceId() != first.GetCurrentIssuance().GetIssuanceId() {
		t.Error("the certificate in use changed with the template")
	}
	if n := countEvents(e.history(cert), lifecyclev1.EventType_EVENT_TYPE_TEMPLATE_UPDATED); n != 1 {
		t.Errorf("%d TEMPLATE_UPDATED events, want 1", n)
	}
	e.publish(resp.GetInstructions())
	if _, err := e.a.RenewCertificate(e.ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: cert}); err != nil {
		t.Fatalf("RenewCertificate: %v", err)
	}
	e.tick()
	c := e.certificate(cert)
	leaf := verifyChainAt(t, e.authority.Roots(), c.GetCurrentIssuance().GetCertificateChainPem(), e.clk.Now())
	if !slices.Equal(leaf.DNSNames, []string{"a.example.com", "b.example.com"}) || c.GetCurrentApplication().GetContact().GetEmail() != newContact.GetEmail() {
		t.Errorf("renewed certificate names %v, application contact %v; want both names and the new contact", leaf.DNSNames,
			c.GetCurrentApplication().GetContact())
	}

	plain := e.buy("dv-single", dv, single, 1, 2, false)
	waiting := e.buy("dv-single", dv, single, 1, 2, true)
	for _, tc := range []struct {
		name    string
		client  lifecyclev1.LifecycleServiceClient
		req     *lifecyclev1.UpdateApplicationTemplateRequest
		code    codes.Code
		mention string
	}{
		{"too many names", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b.GetBundleId(),
			Domains: []string{"a.example.com", "b.example.com", "c.example.com"}}, codes.InvalidArgument, "domains"},
		{"wildcard on multi", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b.GetBundleId(),
			Domains: []string{"*.example.com"}}, codes.InvalidArgument, "domains"},
		{"bad email", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b.GetBundleId(),
			Contact: &lifecyclev1.Contact{Email: "not-an-address"}}, codes.InvalidArgument, "contact.email"},
		{"organization on DV", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b.GetBundleId(), Organization: org},
			codes.InvalidArgument, "organization"},
		{"another account's", e.b, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b.GetBundleId()}, codes.NotFound, b.GetBundleId()},
		{"not hosted", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: plain.GetBundleId()}, codes.FailedPrecondition, "not hosted"},
		{"no first certificate", e.a, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: waiting.GetBundleId()},
			codes.FailedPrecondition, "no first certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.UpdateApplicationTemplate(e.ctx, tc.req)
			wantRefused(t, "UpdateApplicationTemplate", err, tc.code, tc.mention)
		})
	}
}
