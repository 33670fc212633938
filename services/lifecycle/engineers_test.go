package lifecycle_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// TestLeastLoaded: a new account gets the configured engineer with the fewest accounts, ties
// going to the one listed first; engineers no longer configured do not count.
func TestLeastLoaded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		engineers []string
		load      map[string]int
		want      string
	}{
		{"none configured", nil, map[string]int{"alice": 1}, ""},
		{"no accounts yet: the first listed", []string{"alice", "bob"}, nil, "alice"},
		{"fewest wins", []string{"alice", "bob", "carol"}, map[string]int{"alice": 2, "bob": 1, "carol": 3}, "bob"},
		{"tie: the first listed of the least loaded", []string{"alice", "bob", "carol"}, map[string]int{"alice": 2, "bob": 1, "carol": 1}, "bob"},
		{"an engineer without accounts", []string{"alice", "bob"}, map[string]int{"alice": 5}, "bob"},
		{"an engineer no longer configured is ignored", []string{"bob", "carol"}, map[string]int{"alice": 0, "bob": 1, "carol": 2}, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.LeastLoaded(tc.engineers, tc.load); got != tc.want {
				t.Errorf("LeastLoaded(%v, %v) = %q, want %q", tc.engineers, tc.load, got, tc.want)
			}
		})
	}
}

// accountEngineer returns the engineer of account as support reads it.
func (e *env) accountEngineer(account string) string {
	e.t.Helper()
	resp, err := e.support.GetAccountEngineer(e.ctx, &lifecyclev1.GetAccountEngineerRequest{AccountId: account})
	if err != nil {
		e.t.Fatalf("GetAccountEngineer(%s): %v", account, err)
	}
	return resp.GetAccountEngineer().GetEngineer()
}

// assignees maps the case ids of account's cases to their assignees.
func (e *env) assignees(account string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, c := range e.cases(e.support) {
		if c.GetAccountId() == account {
			out[c.GetCaseId()] = c.GetAssignee()
		}
	}
	return out
}

// TestAccountEngineers: each account gets the least-loaded engineer when it first needs one and
// keeps it for every later case; support reassigns it (audited), with or without the open cases;
// bad requests are refused with the field named.
func TestAccountEngineers(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)

	// A needs an engineer first: no engineer has an account, alice is listed first.
	e.rejectOV(2)
	for id, who := range e.assignees(e.accA) {
		if who != "alice" {
			t.Errorf("A's case %s assigned to %s, want alice", id, who)
		}
	}
	// B next: alice has one account, bob none.
	bCase := rejectFor(t, e, e.accB, e.b)
	if got := e.assignees(e.accB)[bCase]; got != "bob" {
		t.Errorf("B's case assigned to %q, want bob (least loaded)", got)
	}
	// C has a bundle and no case: its engineer is chosen when it first asks (a tie: alice).
	c := grpctest.NewCaller(t, e.identity, "c", auth.RoleOwner)
	e.create(t, c.AccountID, 1, false)
	cSupport := lifecyclev1.NewSupportServiceClient(e.gs.Dial(t, c.Key))
	got, err := cSupport.GetAccountEngineer(e.ctx, &lifecyclev1.GetAccountEngineerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &lifecyclev1.AccountEngineer{AccountId: c.AccountID, Engineer: "alice", AssignTime: timestamppb.New(e.clk.Now())}
	if !proto.Equal(got.GetAccountEngineer(), want) {
		t.Errorf("C's GetAccountEngineer = %v, want %v", got.GetAccountEngineer(), want)
	}
	// Asking again changes nothing (the time of the assignment stays).
	e.clk.Advance(time.Hour)
	if again, err := cSupport.GetAccountEngineer(e.ctx, &lifecyclev1.GetAccountEngineerRequest{AccountId: c.AccountID}); err != nil || !proto.Equal(again.GetAccountEngineer(), want) {
		t.Errorf("C's GetAccountEngineer again = %v, %v; want %v", again.GetAccountEngineer(), err, want)
	}

	// Stable: alice now has two accounts and bob one, and A's next case still goes to alice.
	e.rejectOV(1)
	if got := e.assignees(e.accA); len(got) != 3 {
		t.Fatalf("A has %d cases, want 3", len(got))
	}
	for id, who := range e.assignees(e.accA) {
		if who != "alice" {
			t.Errorf("A's case %s assigned to %s, want alice (A's engineer)", id, who)
		}
	}

	// Reassign A to bob without its cases: the open cases stay with alice, new ones go to bob.
	before := e.assignees(e.accA)
	set, err := e.support.SetAccountEngineer(e.ctx, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accA, Engineer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.GetAccountEngineer(); got.GetEngineer() != "bob" || got.GetAccountId() != e.accA || set.GetMovedCases() != 0 ||
		!got.GetAssignTime().AsTime().Equal(e.clk.Now()) {
		t.Errorf("SetAccountEngineer(A, bob) = %v", set)
	}
	if got := e.assignees(e.accA); len(got) != len(before) {
		t.Errorf("A's cases after the reassignment: %v, want %v", got, before)
	} else {
		for id, who := range before {
			if got[id] != who {
				t.Errorf("case %s: assigned to %s after the reassignment without cases, want %s", id, got[id], who)
			}
		}
	}
	if got := e.accountEngineer(e.accA); got != "bob" {
		t.Errorf("A's engineer = %s, want bob", got)
	}
	e.rejectOV(1)
	newCases := 0
	for id, who := range e.assignees(e.accA) {
		if _, old := before[id]; !old {
			newCases++
			if who != "bob" {
				t.Errorf("A's new case %s assigned to %s, want bob", id, who)
			}
		}
	}
	if newCases != 1 {
		t.Errorf("%d new cases of A, want 1", newCases)
	}

	// Resolve one of alice's cases: moving the open cases leaves it with alice.
	var resolved string
	for id := range before {
		resolved = id
		break
	}
	if _, err := e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: resolved, Status: caseResolved}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Minute)
	set, err = e.support.SetAccountEngineer(e.ctx, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accA, Engineer: "bob", MoveOpenCases: true})
	if err != nil {
		t.Fatal(err)
	}
	if set.GetMovedCases() != 2 {
		t.Errorf("moved %d cases, want 2 (alice's open ones)", set.GetMovedCases())
	}
	for id, who := range e.assignees(e.accA) {
		want := "bob"
		if id == resolved {
			want = "alice"
		}
		if who != want {
			t.Errorf("case %s assigned to %s after moving the open cases, want %s", id, who, want)
		}
	}
	for id := range before {
		if id == resolved {
			continue
		}
		sc, err := e.support.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: id})
		if err != nil {
			t.Fatal(err)
		}
		if n := noteList(sc.GetCase()); len(n) == 0 || n[len(n)-1] != "alice: reassigned from alice to bob with the account" {
			t.Errorf("case %s notes %q, want the reassignment last", id, n)
		}
	}
	// B kept its engineer.
	if got := e.accountEngineer(e.accB); got != "bob" {
		t.Errorf("B's engineer = %s, want bob", got)
	}

	// The reassignments are in A's audit log, signed by the engineer.
	audit, err := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, e.keyA)).ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{
		Kinds: []lifecyclev1.AuditEventKind{lifecyclev1.AuditEventKind_AUDIT_EVENT_KIND_ACCOUNT_ENGINEER_SET}})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, ev := range audit.GetAuditEvents() {
		if ev.GetActorName() != "alice" || ev.GetActorRole() != "support" {
			t.Errorf("audit event by %s (%s), want alice (support)", ev.GetActorName(), ev.GetActorRole())
		}
		details = append(details, ev.GetDetail())
	}
	if want := []string{"engineer bob → bob; 2 open cases moved", "engineer alice → bob; 0 open cases moved"}; strings.Join(details, "|") != strings.Join(want, "|") {
		t.Errorf("audit details %q, want %q", details, want)
	}

	// Refused requests change nothing.
	unknown := ids.New(ids.Bundle, e.clk.Now()) // well-formed, but no account of this service
	for _, tc := range []struct {
		name   string
		client lifecyclev1.SupportServiceClient
		req    *lifecyclev1.SetAccountEngineerRequest
		code   codes.Code
		field  string
	}{
		{"engineer not configured", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accB, Engineer: "mallory"}, codes.InvalidArgument, "engineer"},
		{"engineer missing", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accB}, codes.InvalidArgument, "engineer"},
		{"engineer in another case", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accB, Engineer: "Alice"}, codes.InvalidArgument, "engineer"},
		{"account missing", e.support, &lifecyclev1.SetAccountEngineerRequest{Engineer: "alice"}, codes.InvalidArgument, "account_id"},
		{"account with a control character", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: "acct\x00", Engineer: "alice"}, codes.InvalidArgument, "account_id"},
		{"unknown account", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: unknown, Engineer: "alice"}, codes.NotFound, ""},
		{"account without bundles", e.support, &lifecyclev1.SetAccountEngineerRequest{AccountId: grpctest.NewCaller(t, e.identity, "d", auth.RoleOwner).AccountID, Engineer: "alice"}, codes.NotFound, ""},
		{"a customer", e.bSupport, &lifecyclev1.SetAccountEngineerRequest{AccountId: e.accB, Engineer: "alice"}, codes.PermissionDenied, ""},
	} {
		t.Run("set "+tc.name, func(t *testing.T) {
			_, err := tc.client.SetAccountEngineer(e.ctx, tc.req)
			if tc.field != "" {
				grpctest.WantInvalidArgument(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("got %v, want %s", err, tc.code)
			}
		})
	}
	if got := e.accountEngineer(e.accB); got != "bob" {
		t.Errorf("B's engineer after refused reassignments = %s, want bob", got)
	}
	for _, tc := range []struct {
		name   string
		client lifecyclev1.SupportServiceClient
		req    *lifecyclev1.GetAccountEngineerRequest
		code   codes.Code
		field  string
	}{
		{"support without an account", e.support, &lifecyclev1.GetAccountEngineerRequest{}, codes.InvalidArgument, "account_id"},
		{"support, unknown account", e.support, &lifecyclev1.GetAccountEngineerRequest{AccountId: unknown}, codes.NotFound, ""},
		{"a customer asks for another account", e.bSupport, &lifecyclev1.GetAccountEngineerRequest{AccountId: e.accA}, codes.NotFound, ""},
	} {
		t.Run("get "+tc.name, func(t *testing.T) {
			_, err := tc.client.GetAccountEngineer(e.ctx, tc.req)
			if tc.field != "" {
				grpctest.WantInvalidArgument(t, err, tc.field)
			} else if status.Code(err) != tc.code {
				t.Errorf("got %v, want %s", err, tc.code)
			}
		})
	}
}
