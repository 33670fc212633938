package lifecycle_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ids"
)

// TestCreateSupportCase: a customer opens a case about a bundle or an instance of its account;
// it goes to the account's engineer; request_id makes it idempotent per account; every bad input
// is refused with its code and field, and opens nothing.
func TestCreateSupportCase(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	bundle := e.create(t, e.accA, 2, false)
	first, second := bundle.GetCertificates()[0].GetCertificateId(), bundle.GetCertificates()[1].GetCertificateId()
	other := e.create(t, e.accA, 1, false)
	bBundle := e.create(t, e.accB, 1, false)
	// B needs an engineer first (alice), so A's is bob: the case must follow the account, not
	// the order of the configured list.
	if got := e.accountEngineer(e.accB); got != "alice" {
		t.Fatalf("B's engineer = %s, want alice", got)
	}

	resp, err := e.aSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-1", BundleId: bundle.GetBundleId(), Summary: "  How do I install the chain on IIS?\n  "})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.GetCase()
	want := &lifecyclev1.SupportCase{
		CaseId: c.GetCaseId(), AccountId: e.accA, BundleId: bundle.GetBundleId(), CertificateId: first,
		Kind: lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_CUSTOMER_REQUEST, Status: caseOpen, Assignee: "bob",
		Summary: "How do I install the chain on IIS?", CreateTime: c.GetCreateTime(), UpdateTime: c.GetCreateTime(),
	}
	if !ids.Valid(ids.SupportCase, c.GetCaseId()) || !c.GetCreateTime().AsTime().Equal(e.clk.Now()) || !proto.Equal(c, want) {
		t.Errorf("CreateSupportCase = %v, want %v at %v", c, want, e.clk.Now())
	}
	if got := e.accountEngineer(e.accA); got != "bob" {
		t.Errorf("A's engineer = %s, want bob", got)
	}
	// The case is in the instance's history, opened by the customer.
	hist, err := e.a.GetCertificateLifecycle(e.ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: first})
	if err != nil {
		t.Fatal(err)
	}
	last := hist.GetEvents()[len(hist.GetEvents())-1]
	if last.GetType() != lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_OPENED || last.GetSupportCaseId() != c.GetCaseId() ||
		last.GetActor() != lifecyclev1.Actor_ACTOR_CUSTOMER {
		t.Errorf("last event of %s: %v, want the case opened by the customer", first, last)
	}

	// A repeat returns the same case.
	again, err := e.aSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-1", BundleId: bundle.GetBundleId(), Summary: "How do I install the chain on IIS?"})
	if err != nil || !proto.Equal(again.GetCase(), c) {
		t.Errorf("repeated CreateSupportCase = %v, %v; want %v", again.GetCase(), err, c)
	}
	// By instance, and by bundle and instance together.
	byCert, err := e.aSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-2", CertificateId: second, Summary: "year two"})
	if err != nil || byCert.GetCase().GetCertificateId() != second || byCert.GetCase().GetBundleId() != bundle.GetBundleId() || byCert.GetCase().GetCaseId() == c.GetCaseId() {
		t.Errorf("CreateSupportCase by certificate_id = %v, %v", byCert.GetCase(), err)
	}
	both, err := e.aSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-3", BundleId: bundle.GetBundleId(), CertificateId: second, Summary: "both"})
	if err != nil || both.GetCase().GetCertificateId() != second {
		t.Errorf("CreateSupportCase by bundle and certificate = %v, %v", both.GetCase(), err)
	}
	// request_id is per account: B's r-1 is B's own case, with B's engineer.
	bc, err := e.bSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-1", BundleId: bBundle.GetBundleId(), Summary: "How do I install the chain on IIS?"})
	if err != nil || bc.GetCase().GetAccountId() != e.accB || bc.GetCase().GetAssignee() != "alice" || bc.GetCase().GetCaseId() == c.GetCaseId() {
		t.Errorf("B's CreateSupportCase r-1 = %v, %v; want B's own case assigned to alice", bc.GetCase(), err)
	}

	countA := func() int {
		n := 0
		for _, sc := range e.cases(e.support) {
			if sc.GetAccountId() == e.accA {
				n++
			}
		}
		return n
	}
	before := countA()
	_, readerKey, err := e.identity.NewKey(e.ctx, auth.KeySpec{AccountID: e.accA, Role: auth.RoleReader, Name: "reader"}, auth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	aReader := lifecyclev1.NewSupportServiceClient(e.gs.Dial(t, readerKey))
	ok := func(r *lifecyclev1.CreateSupportCaseRequest) *lifecyclev1.CreateSupportCaseRequest {
		out := &lifecyclev1.CreateSupportCaseRequest{RequestId: "bad", BundleId: bundle.GetBundleId(), Summary: "help"}
		proto.Merge(out, r)
		return out
	}
	for _, tc := range []struct {
		name   string
		client lifecyclev1.SupportServiceClient
		req    *lifecyclev1.CreateSupportCaseRequest
		code   codes.Code
		field  string
	}{
		{"request_id missing", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{BundleId: bundle.GetBundleId(), Summary: "help"}, codes.InvalidArgument, "request_id"},
		{"request_id with a space", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{RequestId: "my case"}), codes.InvalidArgument, "request_id"},
		{"request_id not ASCII", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{RequestId: "fall-é"}), codes.InvalidArgument, "request_id"},
		{"request_id of 129 characters", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{RequestId: strings.Repeat("r", 129)}), codes.InvalidArgument, "request_id"},
		{"neither bundle nor certificate", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "bad", Summary: "help"}, codes.InvalidArgument, "bundle_id"},
		{"malformed bundle_id", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{BundleId: "bnd_nope"}), codes.InvalidArgument, "bundle_id"},
		{"malformed certificate_id", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{CertificateId: bundle.GetBundleId()}), codes.InvalidArgument, "certificate_id"},
		{"certificate of another bundle", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{CertificateId: other.GetCertificates()[0].GetCertificateId()}), codes.InvalidArgument, "certificate_id"},
		{"summary missing", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "bad", BundleId: bundle.GetBundleId()}, codes.InvalidArgument, "summary"},
		{"summary blank", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{Summary: " \n\t "}), codes.InvalidArgument, "summary"},
		{"summary of 4001 characters", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{Summary: strings.Repeat("ü", 4001)}), codes.InvalidArgument, "summary"},
		{"NUL in the summary", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{Summary: "see\x00below"}), codes.InvalidArgument, "summary"},
		{"terminal escape in the summary", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{Summary: "\x1b[31mred"}), codes.InvalidArgument, "summary"},
		{"r-1 with another summary", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-1", BundleId: bundle.GetBundleId(), Summary: "something else"}, codes.AlreadyExists, "request_id"},
		{"r-1 about another bundle", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-1", BundleId: other.GetBundleId(), Summary: "How do I install the chain on IIS?"}, codes.AlreadyExists, "request_id"},
		{"r-2 about another instance", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "r-2", CertificateId: first, Summary: "year two"}, codes.AlreadyExists, "request_id"},
		{"another account's bundle", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{BundleId: bBundle.GetBundleId()}), codes.NotFound, ""},
		{"another account's certificate", e.aSupport, &lifecyclev1.CreateSupportCaseRequest{RequestId: "bad", CertificateId: bBundle.GetCertificates()[0].GetCertificateId(), Summary: "help"}, codes.NotFound, ""},
		{"unknown bundle", e.aSupport, ok(&lifecyclev1.CreateSupportCaseRequest{BundleId: ids.New(ids.Bundle, e.clk.Now())}), codes.NotFound, ""},
		{"a reader key", aReader, ok(nil), codes.PermissionDenied, ""},
		{"a support engineer", e.support, ok(nil), codes.PermissionDenied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.CreateSupportCase(e.ctx, tc.req)
			switch {
			case status.Code(err) != tc.code:
				t.Errorf("got %v, want %s", err, tc.code)
			case tc.field != "" && !strings.HasPrefix(status.Convert(err).Message(), tc.field+":"):
				t.Errorf("got %v, want the message to name %s", err, tc.field)
			}
		})
	}
	if got := countA(); got != before {
		t.Errorf("A has %d cases after the refused requests, want %d", got, before)
	}
}

// TestSupportCaseDetails: GetSupportCase carries the instance, the application behind the case
// and the instance's history, the same for the support engineer and the case's customer;
// another account sees nothing.
func TestSupportCaseDetails(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	cert := e.rejectOV(1)[0]
	cs := e.cases(e.support)
	if len(cs) != 1 {
		t.Fatalf("%d cases, want 1", len(cs))
	}
	sc := cs[0]
	got, err := e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got.GetCase(), sc) {
		t.Errorf("case %v, want %v", got.GetCase(), sc)
	}
	if c := got.GetCertificate(); !proto.Equal(c, e.certificate(cert)) {
		t.Errorf("certificate %v, want GetCertificate's %v", c, e.certificate(cert))
	}
	a := got.GetApplication()
	if a.GetApplicationId() != sc.GetApplicationId() || a.GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_REJECTED ||
		a.GetOrganization().GetLegalName() != "Evil Corp" || !slices.Equal(a.GetDomains(), []string{"shop0.example.com"}) || a.GetContact().GetEmail() == "" {
		t.Errorf("application %v, want the rejected one %s of Evil Corp for shop0.example.com with its contact", a, sc.GetApplicationId())
	}
	hist, err := e.a.GetCertificateLifecycle(e.ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetEvents()) != len(hist.GetEvents()) || len(got.GetEvents()) < 3 {
		t.Fatalf("%d events, want GetCertificateLifecycle's %d (at least created, validating, failed)", len(got.GetEvents()), len(hist.GetEvents()))
	}
	for i := range hist.GetEvents() {
		if !proto.Equal(got.GetEvents()[i], hist.GetEvents()[i]) {
			t.Errorf("event %d: %v, want %v", i, got.GetEvents()[i], hist.GetEvents()[i])
		}
	}
	var toFailed bool
	for _, ev := range got.GetEvents() {
		toFailed = toFailed || ev.GetToState() == stFailed
	}
	if !toFailed {
		t.Errorf("history %v has no change to VALIDATION_FAILED", got.GetEvents())
	}
	// The customer sees the same of its own case; another account nothing.
	mine, err := e.aSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()})
	if err != nil || !proto.Equal(mine, got) {
		t.Errorf("the customer's GetSupportCase = %v, %v; want the engineer's %v", mine, err, got)
	}
	if _, err := e.bSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()}); status.Code(err) != codes.NotFound {
		t.Errorf("another account's GetSupportCase = %v, want NotFound", err)
	}

	// A customer's case about an issued instance carries its current (issued) application.
	bundle := e.create(t, e.accA, 1, false)
	issued := e.issue(application(bundle.GetCertificates()[0].GetCertificateId(), "www.example.com"))
	opened, err := e.aSupport.CreateSupportCase(e.ctx, &lifecyclev1.CreateSupportCaseRequest{RequestId: "deploy-help", BundleId: bundle.GetBundleId(), Summary: "where does the chain go?"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: opened.GetCase().GetCaseId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetCertificate().GetCertificateId() != issued.GetCertificateId() || got.GetCertificate().GetCurrentIssuance().GetSerialNumber() == "" {
		t.Errorf("certificate %v, want the issued %s with its issuance", got.GetCertificate(), issued.GetCertificateId())
	}
	if got.GetApplication().GetStatus() != lifecyclev1.ApplicationStatus_APPLICATION_STATUS_ISSUED ||
		got.GetApplication().GetApplicationId() != issued.GetCurrentApplication().GetApplicationId() {
		t.Errorf("application %v, want the issued %s", got.GetApplication(), issued.GetCurrentApplication().GetApplicationId())
	}
	if evs := got.GetEvents(); len(evs) == 0 || evs[len(evs)-1].GetType() != lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_OPENED {
		t.Errorf("history %v, want the case's opening last", evs)
	}
}
