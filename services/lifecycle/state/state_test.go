package state

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

var (
	allStates = []State{None, NotActivated, PendingApplication, Validating, ValidationFailed, Issued, Hosted, Expired, Revoked, Cancelled}
	allActors = []Actor{ActorCustomer, ActorSystem, ActorTicker, ActorSupport}
)

// Every legal edge is allowed for its actors and refused for the others, with a
// FailedPrecondition that names the current state and the actor.
func TestCheckLegalEdges(t *testing.T) {
	t.Parallel()
	for e, actors := range documented(t) {
		for _, a := range allActors {
			t.Run(fmt.Sprintf("%s->%s by %s", e[0], e[1], a), func(t *testing.T) {
				err := Check(e[0], e[1], a)
				if slices.Contains(actors, a) {
					if err != nil {
						t.Errorf("Check = %v, want nil", err)
					}
					return
				}
				if status.Code(err) != codes.FailedPrecondition {
					t.Fatalf("Check = %v, want FailedPrecondition", err)
				}
				want := fmt.Sprintf("certificate is %s; the %s cannot make it %s", e[0], a, e[1])
				if got := status.Convert(err).Message(); got != want {
					t.Errorf("message %q, want %q", got, want)
				}
			})
		}
	}
}

func TestCheckIllegalEdges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to State
		actor    Actor
	}{
		{None, Issued, ActorSystem},
		{None, Hosted, ActorSystem},
		{NotActivated, Validating, ActorCustomer},
		{NotActivated, Issued, ActorTicker},
		{PendingApplication, Issued, ActorSystem},
		{PendingApplication, NotActivated, ActorSystem},
		{Validating, PendingApplication, ActorCustomer},
		{ValidationFailed, Issued, ActorSystem},
		{Issued, Hosted, ActorTicker},
		{Issued, Cancelled, ActorSystem},
		{Hosted, Cancelled, ActorSystem},
		{Expired, Issued, ActorCustomer},
		{Expired, Revoked, ActorCustomer},
		{Revoked, Hosted, ActorCustomer},
		{Revoked, Issued, ActorSupport},
		{Cancelled, PendingApplication, ActorSystem},
		{Cancelled, NotActivated, ActorSystem},
		{Hosted, Hosted, ActorTicker},
		{Issued, None, ActorSystem},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s->%s", tc.from, tc.to), func(t *testing.T) {
			err := Check(tc.from, tc.to, tc.actor)
			if status.Code(err) != codes.FailedPrecondition {
				t.Fatalf("Check = %v, want FailedPrecondition", err)
			}
			msg := status.Convert(err).Message()
			if !strings.HasPrefix(msg, fmt.Sprintf("certificate is %s;", tc.from)) || !strings.Contains(msg, string(tc.to)) {
				t.Errorf("message %q, want it to name the current state %s and the target %s", msg, tc.from, tc.to)
			}
		})
	}
}

// The package's table has exactly the edges of docs/lifecycle.md's table, written out there
// independently of the code: a new transition must be documented too, on purpose. Every pair of
// states outside the list is refused for every actor.
func TestTransitionsMatchDesign(t *testing.T) {
	t.Parallel()
	want := documented(t)
	got := Transitions()
	if len(got) != len(want) {
		t.Errorf("Transitions has %d edges, want %d", len(got), len(want))
	}
	for k, actors := range got {
		w, ok := want[k]
		if !ok {
			t.Errorf("unexpected edge %s -> %s (%v)", k[0], k[1], actors)
			continue
		}
		if !sameSet(actors, w) {
			t.Errorf("edge %s -> %s actors = %v, want %v", k[0], k[1], actors, w)
		}
	}
	for _, from := range allStates {
		for _, to := range allStates {
			if _, ok := want[[2]State{from, to}]; ok {
				continue
			}
			for _, a := range allActors {
				if err := Check(from, to, a); err == nil {
					t.Errorf("Check(%s, %s, %s) = nil for an edge not in the design", from, to, a)
				}
			}
		}
	}
	// Transitions returns a copy: changing it does not change the machine.
	got[[2]State{Cancelled, Hosted}] = []Actor{ActorTicker}
	if Check(Cancelled, Hosted, ActorTicker) == nil {
		t.Error("modifying Transitions() changed the state machine")
	}
}

func sameSet(a, b []Actor) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(x Actor) bool { return !slices.Contains(b, x) })
}

func TestProtoMapping(t *testing.T) {
	t.Parallel()
	for _, s := range allStates[1:] {
		p := ToProto(s)
		if p == lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED {
			t.Errorf("ToProto(%s) is UNSPECIFIED", s)
		}
		if want := "CERTIFICATE_STATE_" + string(s); p.String() != want {
			t.Errorf("ToProto(%s) = %s, want %s", s, p, want)
		}
		back, err := FromProto(p)
		if err != nil || back != s {
			t.Errorf("FromProto(ToProto(%s)) = %q, %v", s, back, err)
		}
	}
	for _, p := range []lifecyclev1.CertificateState{lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED, 99} {
		if s, err := FromProto(p); err == nil {
			t.Errorf("FromProto(%d) = %q, want an error", p, s)
		}
	}
	for _, a := range allActors {
		if want := "ACTOR_" + strings.ToUpper(string(a)); ActorProto(a).String() != want {
			t.Errorf("ActorProto(%s) = %s, want %s", a, ActorProto(a), want)
		}
	}
}
