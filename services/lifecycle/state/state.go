// Package state is the certificate instance state machine: the states, the actors, and the one
// table that says which transition is legal, from which state, for which actor. The store applies
// every state change through Check, as a compare-and-set on the state it checked.
package state

import (
	"fmt"
	"slices"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
)

// State is a certificate instance's state, as stored.
type State string

// The instance states (DESIGN.md, "Certificate instance states").
const (
	None               State = "" // before the instance exists
	NotActivated       State = "NOT_ACTIVATED"
	PendingApplication State = "PENDING_APPLICATION"
	Validating         State = "VALIDATING"
	ValidationFailed   State = "VALIDATION_FAILED"
	Issued             State = "ISSUED"
	Hosted             State = "HOSTED"
	Expired            State = "EXPIRED"
	Revoked            State = "REVOKED"
	Cancelled          State = "CANCELLED"
)

// Actor is who makes a change, as stored.
type Actor string

// The actors.
const (
	ActorCustomer Actor = "customer"
	ActorSystem   Actor = "system"
	ActorTicker   Actor = "ticker"
	ActorSupport  Actor = "support"
)

type edge struct{ from, to State }

// transitions is the state machine: every legal change of an instance's state and who may make
// it. Nothing else decides; every state change in the store goes through Check and is
// applied as a compare-and-set on the state it was checked against.
var transitions = map[edge][]Actor{
	// Payment creates the instances: the first ready for its application, the others waiting.
	{None, PendingApplication}: {ActorSystem},
	{None, NotActivated}:       {ActorSystem},
	// A later instance is activated by the ticker when a hosted bundle's renewal reaches its
	// subscription year, or by the customer of a non-hosted bundle (ActivateCertificate).
	{NotActivated, PendingApplication}: {ActorTicker, ActorCustomer},
	// An application is submitted: by the customer (first instance, non-hosted bundles), or by the
	// ticker with the first application's information (later instances of a hosted bundle).
	{PendingApplication, Validating}: {ActorCustomer, ActorTicker},
	// After a rejection, the customer (or a support engineer on their behalf) resubmits; a
	// rejected hosted renewal is also retried by the ticker, while the certificate in use is valid.
	{ValidationFailed, Validating}: {ActorCustomer, ActorSupport, ActorTicker},
	// The CA's verdict on an application.
	{Validating, ValidationFailed}: {ActorTicker},
	{Validating, Issued}:           {ActorTicker},
	{Validating, Hosted}:           {ActorTicker},
	// A certificate obtained elsewhere is imported into an instance waiting for its application.
	{PendingApplication, Issued}: {ActorCustomer},
	{PendingApplication, Hosted}: {ActorCustomer},
	// A re-issue inside an instance that holds a certificate (a hosted renewal, or a customer's
	// ReissueCertificate) changes no state while it is in flight or when it is rejected: the
	// certificate in use is what the state describes, and the re-issue's progress is the
	// instance's renewal status. It changes the state only when it lands after that certificate
	// expired (a late renewal):
	{Expired, Hosted}: {ActorTicker},
	{Expired, Issued}: {ActorTicker},
	// Hosting is enabled on a bundle bought without it: its certificate in use becomes hosted.
	{Issued, Hosted}: {ActorCustomer},
	// The successor (in the next instance) is hosted: the predecessor stays valid until it expires.
	{Hosted, Issued}: {ActorTicker},
	// The last certificate of an instance passed its not_after.
	{Hosted, Expired}: {ActorTicker},
	{Issued, Expired}: {ActorTicker},
	// The customer revokes a certificate in use.
	{Hosted, Revoked}: {ActorCustomer},
	{Issued, Revoked}: {ActorCustomer},
	// A replacement of a revoked certificate (a hosted bundle's, or a customer's re-issue) is
	// issued.
	{Revoked, Hosted}: {ActorTicker},
	{Revoked, Issued}: {ActorTicker},
	// An order cancelled or refunded before the instance was used.
	{NotActivated, Cancelled}:       {ActorSystem},
	{PendingApplication, Cancelled}: {ActorSystem},
}

// Check returns nil if actor may move an instance from `from` to `to`, and otherwise a
// FailedPrecondition naming the current state.
func Check(from, to State, actor Actor) error {
	actors, ok := transitions[edge{from, to}]
	if !ok {
		return apierr.FailedPrecondition("certificate is %s; it cannot become %s", from, to)
	}
	if !slices.Contains(actors, actor) {
		return apierr.FailedPrecondition("certificate is %s; the %s cannot make it %s", from, actor, to)
	}
	return nil
}

// Transitions lists the table, for docs and tests.
func Transitions() map[[2]State][]Actor {
	out := make(map[[2]State][]Actor, len(transitions))
	for e, a := range transitions {
		out[[2]State{e.from, e.to}] = slices.Clone(a)
	}
	return out
}

var stateToProto = map[State]lifecyclev1.CertificateState{
	None:               lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED,
	NotActivated:       lifecyclev1.CertificateState_CERTIFICATE_STATE_NOT_ACTIVATED,
	PendingApplication: lifecyclev1.CertificateState_CERTIFICATE_STATE_PENDING_APPLICATION,
	Validating:         lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING,
	ValidationFailed:   lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATION_FAILED,
	Issued:             lifecyclev1.CertificateState_CERTIFICATE_STATE_ISSUED,
	Hosted:             lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED,
	Expired:            lifecyclev1.CertificateState_CERTIFICATE_STATE_EXPIRED,
	Revoked:            lifecyclev1.CertificateState_CERTIFICATE_STATE_REVOKED,
	Cancelled:          lifecyclev1.CertificateState_CERTIFICATE_STATE_CANCELLED,
}

// ToProto maps a stored state to the API enum.
func ToProto(s State) lifecyclev1.CertificateState { return stateToProto[s] }

// FromProto maps an API enum (from a filter) to a stored state.
func FromProto(p lifecyclev1.CertificateState) (State, error) {
	for s, v := range stateToProto {
		if v == p && s != None {
			return s, nil
		}
	}
	return "", fmt.Errorf("unknown certificate state %d", int32(p))
}

var actorToProto = map[Actor]lifecyclev1.Actor{
	ActorCustomer: lifecyclev1.Actor_ACTOR_CUSTOMER,
	ActorSystem:   lifecyclev1.Actor_ACTOR_SYSTEM,
	ActorTicker:   lifecyclev1.Actor_ACTOR_TICKER,
	ActorSupport:  lifecyclev1.Actor_ACTOR_SUPPORT,
}

// ActorProto maps a stored actor to the API enum.
func ActorProto(a Actor) lifecyclev1.Actor { return actorToProto[a] }
