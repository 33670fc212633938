// Package ca is the contract between the lifecycle service and a certificate authority: submit an
// application, poll its status, cancel it. Implementations: the built-in local CA (ca/localca),
// ACME, and CA plug-ins behind certhosting.ca.v1.
//
// The contract, for every method: a returned error means "transient, try later" (the CA was
// unreachable, timed out, rate limited us, or failed internally) and is retried with backoff; it
// is never turned into a verdict. A verdict is a Status with State Rejected: the CA decided, and
// the lifecycle service moves the certificate to VALIDATION_FAILED and opens a support case.
package ca

import (
	"context"
	"errors"
	"time"
)

// Client is what the lifecycle service needs of a CA.
type Client interface {
	// Submit starts an application. It is idempotent on Request.ID: submitting the same ID again
	// returns the same submission, so a caller that crashed after Submit but before recording its
	// result can simply submit again.
	Submit(ctx context.Context, req Request) (Submission, error)
	// Status polls an application by the reference Submit returned.
	Status(ctx context.Context, ref string) (Status, error)
	// Cancel abandons an application that is still pending. Cancelling a decided or unknown
	// application is not an error.
	Cancel(ctx context.Context, ref string) error
}

// Request is one application to the CA.
type Request struct {
	// ID is the caller's application id; the idempotency key of Submit.
	ID string
	// Domains are the names, as A-labels; the first is the subject's common name. A wildcard is
	// written "*.example.com".
	Domains []string
	// CSR is the DER-encoded certificate signing request holding the public key; its names match
	// Domains.
	CSR []byte
	// Validation is "DV", "OV" or "EV".
	Validation string
	// Organization is required for OV and EV, nil for DV.
	Organization *Organization
	// Contact is who the CA may write to about this application.
	Contact Contact
	// NotAfter is when the caller wants the certificate to end (the coverage end of its instance).
	// The CA caps it at its maximum validity; a CA that does not take a requested end ignores it.
	// Zero means "as long as allowed".
	NotAfter time.Time
	// Lifetime, when NotAfter is zero and Lifetime is not, asks for a certificate that ends
	// Lifetime after its own not_before (capped like NotAfter). The first certificate of a bundle
	// is requested this way: it defines the bundle's T0 and must end exactly one year later.
	Lifetime time.Duration
	// Binding identifies the subscription the application belongs to. It is the same for every
	// application of a bundle, so a CA whose domain validation record is derived from it (the local
	// CA's persistent TXT record, DNS delegation) verifies renewals with no customer action.
	Binding string
	// Replaces is the certificate (PEM) this one renews, if any: an ACME CA with renewal
	// information (RFC 9773) is told which certificate is being replaced.
	Replaces []byte
}

// Organization is what OV and EV validation check.
type Organization struct {
	LegalName          string `json:"legal_name"`
	Country            string `json:"country"` // ISO 3166-1 alpha-2
	StateOrProvince    string `json:"state_or_province,omitempty"`
	Locality           string `json:"locality"`
	RegistrationNumber string `json:"registration_number"`
}

// Contact is the applicant's contact.
type Contact struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email"`
	Phone string `json:"phone,omitempty"`
}

// DNSRecord is a record the customer must publish for the CA to verify domain control.
type DNSRecord struct {
	Name  string `json:"name"`  // fully qualified, without the trailing dot
	Type  string `json:"type"`  // "TXT" or "CNAME"
	Value string `json:"value"` // the TXT value, or the CNAME target
}

// Submission is the CA's answer to Submit.
type Submission struct {
	// Ref identifies the application at the CA, for Status and Cancel.
	Ref string
	// Instructions are the DNS records to publish; empty when nothing needs publishing.
	Instructions []DNSRecord
}

// State is where an application stands at the CA.
type State int

// Application states.
const (
	Pending State = iota + 1
	Issued
	Rejected
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Issued:
		return "issued"
	case Rejected:
		return "rejected"
	}
	return "unknown"
}

// Reason is why the CA rejected an application.
type Reason string

// Rejection reasons.
const (
	ReasonDNS          Reason = "DNS"          // domain control could not be verified
	ReasonOrganization Reason = "ORGANIZATION" // organization details could not be verified
	ReasonCAA          Reason = "CAA"          // a CAA record forbids this CA, or the CAA records cannot be looked up
	ReasonPolicy       Reason = "POLICY"       // anything else the CA's policy refuses
)

// Status is the CA's answer to Status.
type Status struct {
	State State
	// RetryAfter is when to poll again (Pending); zero leaves it to the caller's backoff.
	RetryAfter time.Duration
	// ChainPEM is the issued chain, leaf first (Issued).
	ChainPEM []byte
	// Reason and Message explain a rejection (Rejected).
	Reason  Reason
	Message string
}

// RetryAfterError is a transient error for which the CA said how long to wait (an ACME
// rateLimited or serverInternal problem with a Retry-After header, say). The caller waits at
// least After before trying again.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns how long err asks the caller to wait (zero when it does not say).
func RetryAfter(err error) time.Duration {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After
	}
	return 0
}

// RenewalWindow is a CA's suggestion of when to renew a certificate (ACME Renewal Information,
// RFC 9773).
type RenewalWindow struct {
	Start, End time.Time
	// RetryAfter is when to ask again; the CA may move the window (for example to renew early
	// after a mass revocation).
	RetryAfter time.Duration
	// ExplanationURL, if the CA gave one, explains why the window is where it is.
	ExplanationURL string
}

// RenewalInformer is implemented by a Client whose CA publishes renewal information. The
// lifecycle service asks it for the window of every hosted certificate the CA issued.
type RenewalInformer interface {
	// RenewalInfo returns the CA's window for the certificate (PEM, leaf first). ok is false when
	// the CA does not offer renewal information; an error is transient.
	RenewalInfo(ctx context.Context, chainPEM []byte) (w RenewalWindow, ok bool, err error)
}

// VerdictTimer is implemented by a Client that rejects an application after waiting a fixed time
// for something only the customer can fix: the local CA's DNS timeout, an ACME client's CNAME
// timeout. The lifecycle service's UpdateBundle reads it to refuse a renewal window too short for
// the verdict to come before the escalation (its start-up check of the same rule reads the flags
// and the CA configuration, which also name the certificates' lifetime). A CA plug-in's wait is
// its own: the plug-in client does not implement it.
type VerdictTimer interface {
	// VerdictTimeout is the wait; zero when the client never rejects for want of the customer.
	VerdictTimeout() time.Duration
}

// InProcess is implemented by a Client whose CA runs inside the lifecycle service's own process
// (the local CA): a call to it costs this process's CPU and database, not a remote service's
// capacity or rate limits, so the renewal ticker does not bound the calls it has in flight to it
// (the lifecycle service's TickerConfig.CACalls bounds those to every other CA).
type InProcess interface {
	// InProcess marks the implementation; it does nothing.
	InProcess()
}

// Instructor is implemented by a Client whose DNS records depend only on the subscription (a
// Request's Binding) and the names, so it can tell them before any application is made: an
// imported certificate's customer publishes them at once, and the first renewal verifies with no
// further action. (The local CA's TXT records, an ACME client's delegation CNAMEs.)
type Instructor interface {
	// Instructions are the records Submit would ask for, for an application with this binding
	// and these names.
	Instructions(binding string, domains []string) []DNSRecord
}

// RevocationReason is an RFC 5280 CRLReason (section 5.3.1): 0 unspecified, 1 keyCompromise,
// 3 affiliationChanged, 4 superseded, 5 cessationOfOperation (2, 6, 8, 9 and 10 are for CAs and
// attribute certificates, 7 is unused).
type RevocationReason int

// The reasons a subscriber may give.
const (
	RevokeUnspecified          RevocationReason = 0
	RevokeKeyCompromise        RevocationReason = 1
	RevokeAffiliationChanged   RevocationReason = 3
	RevokeSuperseded           RevocationReason = 4
	RevokeCessationOfOperation RevocationReason = 5
)

// ErrNotRevocable is a CA's final refusal to revoke a certificate (it did not issue it, or refuses
// the reason): asking again gets the same answer. Wrapped with the CA's words; any other error from
// Revoke is transient.
var ErrNotRevocable = errors.New("the CA refuses to revoke the certificate")

// Revoker is implemented by a Client that can revoke what it issued. Revoking a certificate the CA
// has already revoked succeeds.
type Revoker interface {
	// Revoke revokes the certificate (PEM, leaf first) for reason.
	Revoke(ctx context.Context, chainPEM []byte, reason RevocationReason) error
}
