package lifecycle_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

var (
	caseOpen       = lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_OPEN
	caseInProgress = lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_IN_PROGRESS
	caseResolved   = lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED
)

// supportEnv is an env whose CA rejects organizations named "Evil ...".
func supportEnv(t *testing.T) *env {
	return newEnv(t, envOptions{rejectOrg: regexp.MustCompile(`^Evil`)})
}

// rejectOV has n OV applications of A's rejected by the CA, one after another (the organization
// check fails), each opening a support case; it returns the certificates in that order. The clock
// moves a second after each, so the cases list newest first: case ids order by opening time only
// to the millisecond, and within one millisecond by the process-wide ULID entropy, which tests
// running in parallel at other times reset.
func (e *env) rejectOV(n int) []string {
	e.t.Helper()
	var certs []string
	for i := range n {
		cert := e.buy("ov-single", ov, single, 1, 1, false).GetCertificates()[0].GetCertificateId()
		req := application(cert, fmt.Sprintf("shop%d.example.com", i))
		req.Organization = &lifecyclev1.Organization{LegalName: "Evil Corp", Country: "US", Locality: "Springfield", RegistrationNumber: "123"}
		e.publish(e.submit(req).GetInstructions())
		e.tick()
		if got := e.certificate(cert).GetState(); got != stFailed {
			e.t.Fatalf("application %d: instance is %s, want VALIDATION_FAILED", i, got)
		}
		certs = append(certs, cert)
		e.clk.Advance(time.Second)
	}
	return certs
}

// updateCase calls UpdateSupportCase as c.
func (e *env) updateCase(c lifecyclev1.SupportServiceClient, req *lifecyclev1.UpdateSupportCaseRequest) (*lifecyclev1.SupportCase, error) {
	resp, err := c.UpdateSupportCase(e.ctx, req)
	return resp.GetCase(), err
}

func noteList(sc *lifecyclev1.SupportCase) []string {
	var out []string
	for _, n := range sc.GetNotes() {
		out = append(out, n.GetAuthor()+": "+n.GetText())
	}
	return out
}

// TestUpdateSupportCase: the customer adds notes; the engineer changes status and assignee and
// adds notes signed with the engineer's name; everything refused changes nothing.
func TestUpdateSupportCase(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	e.rejectOV(1)
	id := e.cases(e.aSupport)[0].GetCaseId()

	sc, err := e.updateCase(e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: "  the organization is registered, see HRB 123  "})
	if err != nil {
		t.Fatalf("customer note: %v", err)
	}
	if want := []string{"customer: the organization is registered, see HRB 123"}; !slices.Equal(noteList(sc), want) {
		t.Errorf("notes %q, want %q", noteList(sc), want)
	}
	sc, err = e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Status: caseInProgress, Note: "checking the registry"})
	if err != nil {
		t.Fatalf("engineer's update: %v", err)
	}
	if sc.GetStatus() != caseInProgress || !slices.Equal(noteList(sc)[1:], []string{"alice: checking the registry", "alice: status OPEN → IN_PROGRESS"}) {
		t.Errorf("case %s with notes %q, want IN_PROGRESS with alice's note and the status change", sc.GetStatus(), noteList(sc))
	}
	sc, err = e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Assignee: "bob"})
	if err != nil {
		t.Fatalf("reassigning: %v", err)
	}
	if sc.GetAssignee() != "bob" || noteList(sc)[3] != "alice: reassigned from alice to bob" {
		t.Errorf("case assigned to %s with notes %q, want bob and a note of the reassignment", sc.GetAssignee(), noteList(sc))
	}

	before := noteList(sc)
	long := strings.Repeat("ü", 4001)
	tests := []struct {
		name   string
		client lifecyclev1.SupportServiceClient
		req    *lifecyclev1.UpdateSupportCaseRequest
		code   codes.Code
		field  string
	}{
		{"customer changes the status", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Status: caseResolved}, codes.PermissionDenied, ""},
		{"customer reassigns", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Assignee: "alice", Note: "alice please"}, codes.PermissionDenied, ""},
		{"unknown engineer", e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Assignee: "mallory"}, codes.InvalidArgument, "assignee"},
		{"empty update", e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id}, codes.InvalidArgument, "note"},
		{"blank note only", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: " \n "}, codes.InvalidArgument, "note"},
		{"note of 4001 characters", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: long}, codes.InvalidArgument, "note"},
		{"NUL in a note", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: "see\x00below"}, codes.InvalidArgument, "note"},
		{"terminal escape in a note", e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: "\x1b[31mred"}, codes.InvalidArgument, "note"},
		{"unknown status", e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Status: 99}, codes.InvalidArgument, "status"},
		{"malformed case_id", e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: "case_1", Note: "x"}, codes.InvalidArgument, "case_id"},
		{"another account", e.bSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: "x"}, codes.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.updateCase(tc.client, tc.req)
			if tc.code == codes.InvalidArgument {
				grpctest.WantInvalidArgument(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("UpdateSupportCase = %v, want %s", err, tc.code)
			}
		})
	}
	resp, err := e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetCase(); got.GetStatus() != caseInProgress || got.GetAssignee() != "bob" || !slices.Equal(noteList(got), before) {
		t.Errorf("after refused updates: %s, %s, notes %q; want IN_PROGRESS, bob, %q", got.GetStatus(), got.GetAssignee(), noteList(got), before)
	}

	// A note's limit is 4000 characters, however many bytes they take.
	sc, err = e.updateCase(e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: id, Note: long[len("ü"):]})
	if err != nil || len(sc.GetNotes()) != len(before)+1 {
		t.Errorf("note of 4000 characters: %v, want it added", err)
	}
}

// TestSupportCases: an account's cases all go to its engineer (an engineer may still hand one
// case to another); the engineer and the customer list them by status and assignee, page by
// page; another account sees none of them.
func TestSupportCases(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	certs := e.rejectOV(5)
	byCert := map[string]*lifecyclev1.SupportCase{}
	for _, sc := range e.cases(e.support) {
		byCert[sc.GetCertificateId()] = sc
	}
	var assignees []string
	for _, cert := range certs {
		assignees = append(assignees, byCert[cert].GetAssignee())
	}
	if want := []string{"alice", "alice", "alice", "alice", "alice"}; !slices.Equal(assignees, want) {
		t.Errorf("cases of failures in a row assigned %v, want %v (the account's engineer)", assignees, want)
	}
	for _, i := range []int{1, 3} {
		if _, err := e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: byCert[certs[i]].GetCaseId(), Assignee: "bob"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: byCert[certs[0]].GetCaseId(), Status: caseInProgress}); err != nil {
		t.Fatal(err)
	}

	// list pages through ListSupportCases with page_size 1 and returns the cases' failure numbers,
	// newest first.
	number := map[string]int{}
	for i, cert := range certs {
		number[byCert[cert].GetCaseId()] = i
	}
	list := func(t *testing.T, c lifecyclev1.SupportServiceClient, st lifecyclev1.SupportCaseStatus, assignee string) ([]int, int) {
		return grpctest.Pages(t, func(token string) ([]int, string, error) {
			resp, err := c.ListSupportCases(e.ctx, &lifecyclev1.ListSupportCasesRequest{PageSize: 1, PageToken: token, Status: st, Assignee: assignee})
			var got []int
			for _, sc := range resp.GetCases() {
				got = append(got, number[sc.GetCaseId()])
			}
			return got, resp.GetNextPageToken(), err
		})
	}
	for _, tc := range []struct {
		name     string
		status   lifecyclev1.SupportCaseStatus
		assignee string
		want     []int
	}{
		{"all", 0, "", []int{4, 3, 2, 1, 0}},
		{"open", caseOpen, "", []int{4, 3, 2, 1}},
		{"in progress", caseInProgress, "", []int{0}},
		{"alice's", 0, "alice", []int{4, 2, 0}},
		{"alice's open", caseOpen, "alice", []int{4, 2}},
		{"bob's resolved", caseResolved, "bob", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for who, c := range map[string]lifecyclev1.SupportServiceClient{"engineer": e.support, "customer": e.aSupport} {
				got, pages := list(t, c, tc.status, tc.assignee)
				if !slices.Equal(got, tc.want) || pages != max(1, len(tc.want)) {
					t.Errorf("%s: cases %v in %d pages, want %v one a page", who, got, pages, tc.want)
				}
			}
			if got, _ := list(t, e.bSupport, tc.status, tc.assignee); len(got) != 0 {
				t.Errorf("another account lists %v, want none", got)
			}
		})
	}

	first, err := e.support.ListSupportCases(e.ctx, &lifecyclev1.ListSupportCasesRequest{PageSize: 1, Status: caseOpen})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v; want a next page", first, err)
	}
	for _, tc := range []struct {
		name   string
		client lifecyclev1.SupportServiceClient
		req    *lifecyclev1.ListSupportCasesRequest
		field  string
	}{
		{"token with another status", e.support, &lifecyclev1.ListSupportCasesRequest{PageSize: 1, PageToken: first.GetNextPageToken(), Status: caseInProgress}, "page_token"},
		{"token with another assignee", e.support, &lifecyclev1.ListSupportCasesRequest{PageSize: 1, PageToken: first.GetNextPageToken(), Status: caseOpen, Assignee: "bob"}, "page_token"},
		{"token of another caller", e.aSupport, &lifecyclev1.ListSupportCasesRequest{PageSize: 1, PageToken: first.GetNextPageToken(), Status: caseOpen}, "page_token"},
		{"unknown status", e.support, &lifecyclev1.ListSupportCasesRequest{Status: 99}, "status"},
		{"page_size 501", e.support, &lifecyclev1.ListSupportCasesRequest{PageSize: 501}, "page_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.ListSupportCases(e.ctx, tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}

	for _, sc := range byCert {
		if _, err := e.bSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()}); status.Code(err) != codes.NotFound {
			t.Errorf("another account's GetSupportCase = %v, want NotFound", err)
		}
		if _, err := e.aSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: sc.GetCaseId()}); err != nil {
			t.Errorf("the owner's GetSupportCase = %v", err)
		}
	}
}
