package lifecycle_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/services/lifecycle"
)

const (
	opRunning   = lifecyclev1.OperationState_OPERATION_STATE_RUNNING
	opPaused    = lifecyclev1.OperationState_OPERATION_STATE_PAUSED
	opCancelled = lifecyclev1.OperationState_OPERATION_STATE_CANCELLED
	opSucceeded = lifecyclev1.OperationState_OPERATION_STATE_SUCCEEDED
)

// ops is the operations client of the support engineer alice.
func (e *env) ops() lifecyclev1.OperationsServiceClient {
	return lifecyclev1.NewOperationsServiceClient(e.supportConn)
}

// hostedN gets n hosted bundles of account A issued and returns their first certificates' ids.
func (e *env) hostedN(n int) []string {
	e.t.Helper()
	var out []string
	for range n {
		b, _ := e.hosting()
		out = append(out, b.GetCertificates()[0].GetCertificateId())
	}
	return out
}

// startReissue creates a mass re-issue operation as alice.
func (e *env) startReissue(requestID string, sel *lifecyclev1.ReissueSelector, rate float64) *lifecyclev1.Operation {
	e.t.Helper()
	resp, err := e.ops().CreateReissueOperation(e.ctx, &lifecyclev1.CreateReissueOperationRequest{RequestId: requestID, Selector: sel, RatePerSecond: rate})
	if err != nil {
		e.t.Fatalf("CreateReissueOperation: %v", err)
	}
	return resp.GetOperation()
}

// step runs one step of the Reissuer and returns how many renewals it started.
func (e *env) step(r *lifecycle.Reissuer) int {
	e.t.Helper()
	n, err := r.Step(e.ctx)
	if err != nil {
		e.t.Fatalf("Reissuer.Step: %v", err)
	}
	return n
}

func (e *env) operation(name string) *lifecyclev1.Operation {
	e.t.Helper()
	resp, err := e.ops().GetOperation(e.ctx, &lifecyclev1.GetOperationRequest{Name: name})
	if err != nil {
		e.t.Fatalf("GetOperation: %v", err)
	}
	return resp.GetOperation()
}

// renewalsStartedBy counts the RENEWAL_STARTED events of certID.
func (e *env) renewalsStartedBy(certID string) int {
	n := 0
	for _, ev := range e.history(certID) {
		if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_RENEWAL_STARTED {
			n++
		}
	}
	return n
}

// TestMassReissue re-issues every hosted certificate of an account at 2 per second: each step
// starts what the rate allows on the service clock, the ticker issues every replacement with a new
// key, and the operation ends SUCCEEDED with every certificate counted once.
func TestMassReissue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certs := e.hostedN(5)
	before := map[string]string{}
	for _, c := range certs {
		before[c] = e.certificate(c).GetCurrentIssuance().GetSerialNumber()
	}
	op := e.startReissue("drill-1", &lifecyclev1.ReissueSelector{AccountId: e.accA}, 2)
	if p := op.GetProgress(); op.GetState() != opRunning || op.GetDone() || p.GetMatched() != 5 || op.GetCreatedBy() != "alice" {
		t.Fatalf("created: %v", op)
	}
	var perStep []int
	for i := 0; i < 10 && !e.operation(op.GetName()).GetDone(); i++ {
		perStep = append(perStep, e.step(e.reissuer), e.step(e.reissuer)) // the second finds no budget left
		e.clk.Advance(time.Second)
	}
	if fmt.Sprint(perStep) != "[2 0 2 0 1 0]" {
		t.Errorf("renewals started per step = %v, want [2 0 2 0 1 0] (2/s, then the last one)", perStep)
	}
	got := e.operation(op.GetName())
	if p := got.GetProgress(); got.GetState() != opSucceeded || !got.GetDone() || p.GetStarted() != 5 || p.GetProcessed() != 5 || p.GetSkipped() != 0 {
		t.Fatalf("finished: %v; want SUCCEEDED with 5 started", got)
	}
	e.tick()
	for _, c := range certs {
		cur := e.certificate(c)
		if cur.GetState() != stHosted || cur.GetCurrentIssuance().GetSerialNumber() == before[c] || e.renewalsStartedBy(c) != 1 {
			t.Errorf("%s after the drill: %s, serial %s (was %s), %d renewals; want HOSTED with a new certificate, one renewal",
				c, cur.GetState(), cur.GetCurrentIssuance().GetSerialNumber(), before[c], e.renewalsStartedBy(c))
		}
	}
	// The same request again is the same operation; another selector under its id is refused.
	if again := e.startReissue("drill-1", &lifecyclev1.ReissueSelector{AccountId: e.accA}, 2); again.GetName() != op.GetName() {
		t.Errorf("repeated request_id made %s, want %s", again.GetName(), op.GetName())
	}
	_, err := e.ops().CreateReissueOperation(e.ctx, &lifecyclev1.CreateReissueOperationRequest{RequestId: "drill-1",
		Selector: &lifecyclev1.ReissueSelector{AccountId: e.accB}})
	wantRefused(t, "request_id reused", err, codes.AlreadyExists, "request_id")
}

// TestMassReissueSelectors: each selector field narrows what an operation matches.
func TestMassReissueSelectors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certs := e.hostedN(2)
	block, _ := pem.Decode([]byte(e.certificate(certs[0]).GetCurrentIssuance().GetCertificateChainPem()))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Hour)
	for i, tc := range []struct {
		name string
		sel  *lifecyclev1.ReissueSelector
		want int64
	}{
		{"account", &lifecyclev1.ReissueSelector{AccountId: e.accA}, 2},
		{"another account", &lifecyclev1.ReissueSelector{AccountId: e.accB}, 0},
		{"CA", &lifecyclev1.ReissueSelector{Ca: "local"}, 2},
		{"issuer", &lifecyclev1.ReissueSelector{Issuer: leaf.Issuer.String()}, 2},
		{"another issuer", &lifecyclev1.ReissueSelector{Issuer: "CN=Someone Else"}, 0},
		{"issued before now", &lifecyclev1.ReissueSelector{IssuedBefore: timestamppb.New(e.clk.Now())}, 2},
		{"issued before they were", &lifecyclev1.ReissueSelector{IssuedBefore: timestamppb.New(start.Add(-24 * time.Hour))}, 0},
		{"all fields", &lifecyclev1.ReissueSelector{Ca: "local", Issuer: leaf.Issuer.String(), IssuedBefore: timestamppb.New(e.clk.Now()), AccountId: e.accA}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.in(t)
			op := e.startReissue(fmt.Sprintf("sel-%d", i), tc.sel, 1)
			if got := op.GetProgress().GetMatched(); got != tc.want {
				t.Errorf("matched %d, want %d", got, tc.want)
			}
			if _, err := e.ops().CancelOperation(e.ctx, &lifecyclev1.CancelOperationRequest{Name: op.GetName()}); err != nil {
				t.Fatal(err)
			}
		})
	}
	// An operation that matches nothing succeeds at its first step.
	op := e.startReissue("nothing", &lifecyclev1.ReissueSelector{Issuer: "CN=Someone Else"}, 100)
	if n := e.step(e.reissuer); n != 0 {
		t.Errorf("step started %d renewals for an issuer nobody has", n)
	}
	if got := e.operation(op.GetName()); got.GetState() != opSucceeded || got.GetProgress().GetProcessed() != 2 || got.GetProgress().GetStarted() != 0 {
		t.Errorf("after its step: %v; want SUCCEEDED, 2 looked at, none started", got)
	}
}

// TestMassReissuePauseResumeCancel: a paused operation starts nothing until resumed; a cancelled
// one never again; a certificate whose renewal is already in flight is skipped; and a new
// Reissuer (a restarted service) continues from the stored cursor without renewing any
// certificate twice.
func TestMassReissuePauseResumeCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	certs := e.hostedN(6)
	if _, err := e.a.RenewCertificate(e.ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: certs[5]}); err != nil {
		t.Fatal(err)
	}
	op := e.startReissue("drill-2", &lifecyclev1.ReissueSelector{Ca: "local"}, 1)
	if n := e.step(e.reissuer); n != 1 {
		t.Fatalf("first step started %d, want 1", n)
	}
	pause := func() *lifecyclev1.Operation {
		resp, err := e.ops().PauseOperation(e.ctx, &lifecyclev1.PauseOperationRequest{Name: op.GetName()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOperation()
	}
	if got := pause(); got.GetState() != opPaused || got.GetDone() {
		t.Fatalf("paused: %v", got)
	}
	e.clk.Advance(10 * time.Second)
	if n := e.step(e.reissuer); n != 0 {
		t.Errorf("a paused operation started %d renewals", n)
	}
	if got := pause(); got.GetState() != opPaused {
		t.Errorf("pausing twice: %v", got)
	}
	if _, err := e.ops().ResumeOperation(e.ctx, &lifecyclev1.ResumeOperationRequest{Name: op.GetName()}); err != nil {
		t.Fatal(err)
	}
	if n := e.step(e.reissuer); n != 1 {
		t.Errorf("resumed: started %d, want 1", n)
	}
	// The service restarts: a new Reissuer, with a fresh budget, continues after the cursor.
	restarted := lifecycle.NewReissuer(e.cfg, nil)
	e.clk.Advance(time.Second)
	for i := 0; i < 10 && !e.operation(op.GetName()).GetDone(); i++ {
		e.step(restarted)
		e.clk.Advance(time.Second)
	}
	got := e.operation(op.GetName())
	if p := got.GetProgress(); got.GetState() != opSucceeded || p.GetStarted() != 5 || p.GetSkipped() != 1 || p.GetProcessed() != 6 {
		t.Fatalf("finished: %v; want SUCCEEDED, 5 started, 1 skipped (its renewal was in flight)", got)
	}
	for _, c := range certs {
		if n := e.renewalsStartedBy(c); n != 1 {
			t.Errorf("%s: %d renewals started, want 1", c, n)
		}
	}
	_, err := e.ops().PauseOperation(e.ctx, &lifecyclev1.PauseOperationRequest{Name: op.GetName()})
	wantRefused(t, "pausing a finished operation", err, codes.FailedPrecondition, "SUCCEEDED")
	_, err = e.ops().CancelOperation(e.ctx, &lifecyclev1.CancelOperationRequest{Name: op.GetName()})
	wantRefused(t, "cancelling a finished operation", err, codes.FailedPrecondition, "succeeded")

	// Cancel: nothing more starts, ever.
	e.tick()
	op2 := e.startReissue("drill-3", &lifecyclev1.ReissueSelector{AccountId: e.accA}, 2)
	e.step(e.reissuer)
	resp, err := e.ops().CancelOperation(e.ctx, &lifecyclev1.CancelOperationRequest{Name: op2.GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetOperation(); got.GetState() != opCancelled || !got.GetDone() || got.GetProgress().GetStarted() != 2 {
		t.Fatalf("cancelled: %v; want CANCELLED, done, 2 started", got)
	}
	e.clk.Advance(time.Minute)
	if n := e.step(e.reissuer); n != 0 {
		t.Errorf("a cancelled operation started %d renewals", n)
	}
	_, err = e.ops().ResumeOperation(e.ctx, &lifecyclev1.ResumeOperationRequest{Name: op2.GetName()})
	wantRefused(t, "resuming a cancelled operation", err, codes.FailedPrecondition, "CANCELLED")
	list, err := e.ops().ListOperations(e.ctx, &lifecyclev1.ListOperationsRequest{State: opCancelled})
	if err != nil || len(list.GetOperations()) != 1 || list.GetOperations()[0].GetName() != op2.GetName() {
		t.Errorf("ListOperations(CANCELLED) = %v, %v; want %s alone", list, err, op2.GetName())
	}
}

// TestMassReissueCALimit: an operation asking for 100/s gets the CA's own limit, 1/s.
func TestMassReissueCALimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{caRateLimits: map[string]float64{"local": 1}})
	e.hostedN(3)
	op := e.startReissue("limited", &lifecyclev1.ReissueSelector{Ca: "local"}, 100)
	var perStep []int
	for range 3 {
		perStep = append(perStep, e.step(e.reissuer), e.step(e.reissuer))
		e.clk.Advance(time.Second)
	}
	e.step(e.reissuer)
	if fmt.Sprint(perStep) != "[1 0 1 0 1 0]" {
		t.Errorf("started per step = %v, want [1 0 1 0 1 0]: the CA's 1/s", perStep)
	}
	if got := e.operation(op.GetName()); got.GetState() != opSucceeded || got.GetProgress().GetStarted() != 3 {
		t.Errorf("finished: %v", got)
	}
}

// TestOperationsRefused: bad input to every OperationsService method gets the right code naming
// the field, and customers cannot reach it.
func TestOperationsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	op := e.startReissue("exists", &lifecyclev1.ReissueSelector{AccountId: e.accA}, 0)
	if op.GetRatePerSecond() != lifecycle.DefaultReissueRate {
		t.Errorf("default rate = %v, want %d", op.GetRatePerSecond(), lifecycle.DefaultReissueRate)
	}
	sel := &lifecyclev1.ReissueSelector{AccountId: e.accA}
	long := strings.Repeat("r", 129)
	for _, tc := range []struct {
		name    string
		req     *lifecyclev1.CreateReissueOperationRequest
		code    codes.Code
		mention string
	}{
		{"no request_id", &lifecyclev1.CreateReissueOperationRequest{Selector: sel}, codes.InvalidArgument, "request_id"},
		{"long request_id", &lifecyclev1.CreateReissueOperationRequest{RequestId: long, Selector: sel}, codes.InvalidArgument, "request_id"},
		{"no selector", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1"}, codes.InvalidArgument, "selector"},
		{"empty selector", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: &lifecyclev1.ReissueSelector{}}, codes.InvalidArgument, "selector"},
		{"unknown CA", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: &lifecyclev1.ReissueSelector{Ca: "nope"}}, codes.InvalidArgument, "selector.ca"},
		{"malformed account", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: &lifecyclev1.ReissueSelector{AccountId: "acc_x"}}, codes.InvalidArgument, "selector.account_id"},
		{"control in issuer", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: &lifecyclev1.ReissueSelector{Issuer: "CN=a\x00"}}, codes.InvalidArgument, "selector.issuer"},
		{"invalid time", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: &lifecyclev1.ReissueSelector{IssuedBefore: &timestamppb.Timestamp{Nanos: -1}}}, codes.InvalidArgument, "selector.issued_before"},
		{"negative rate", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: sel, RatePerSecond: -1}, codes.InvalidArgument, "rate_per_second"},
		{"NaN rate", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: sel, RatePerSecond: math.NaN()}, codes.InvalidArgument, "rate_per_second"},
		{"rate too high", &lifecyclev1.CreateReissueOperationRequest{RequestId: "r1", Selector: sel, RatePerSecond: 10001}, codes.InvalidArgument, "rate_per_second"},
		{"request_id reused", &lifecyclev1.CreateReissueOperationRequest{RequestId: "exists", Selector: sel, RatePerSecond: 5}, codes.AlreadyExists, "request_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ops().CreateReissueOperation(e.ctx, tc.req)
			wantRefused(t, "CreateReissueOperation", err, tc.code, tc.mention)
		})
	}
	missing := "operations/op_01JD3Y4M6Q0H3T5R2E8W9XKZ7B"
	for _, tc := range []struct {
		name, opName string
		code         codes.Code
		mention      string
	}{
		{"no name", "", codes.InvalidArgument, "name"},
		{"not an operation", "bundles/bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B", codes.InvalidArgument, "name"},
		{"malformed id", "operations/op_x", codes.InvalidArgument, "name"},
		{"missing", missing, codes.NotFound, "op_01JD3Y4M6Q0H3T5R2E8W9XKZ7B"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.ops().GetOperation(e.ctx, &lifecyclev1.GetOperationRequest{Name: tc.opName})
			wantRefused(t, "GetOperation", err, tc.code, tc.mention)
			_, err = e.ops().PauseOperation(e.ctx, &lifecyclev1.PauseOperationRequest{Name: tc.opName})
			wantRefused(t, "PauseOperation", err, tc.code, tc.mention)
			_, err = e.ops().ResumeOperation(e.ctx, &lifecyclev1.ResumeOperationRequest{Name: tc.opName})
			wantRefused(t, "ResumeOperation", err, tc.code, tc.mention)
			_, err = e.ops().CancelOperation(e.ctx, &lifecyclev1.CancelOperationRequest{Name: tc.opName})
			wantRefused(t, "CancelOperation", err, tc.code, tc.mention)
		})
	}
	_, err := e.ops().ListOperations(e.ctx, &lifecyclev1.ListOperationsRequest{State: 42})
	wantRefused(t, "ListOperations unknown state", err, codes.InvalidArgument, "state")
	_, err = e.ops().ListOperations(e.ctx, &lifecyclev1.ListOperationsRequest{PageToken: "garbage"})
	wantRefused(t, "ListOperations bad token", err, codes.InvalidArgument, "page_token")
	_, err = lifecyclev1.NewOperationsServiceClient(e.gs.Dial(t, e.keyA)).CreateReissueOperation(e.ctx,
		&lifecyclev1.CreateReissueOperationRequest{RequestId: "customer", Selector: sel})
	wantRefused(t, "a customer's CreateReissueOperation", err, codes.PermissionDenied, "")
}
