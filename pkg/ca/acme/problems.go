package acme

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-acme/lego/v5/acme"

	"github.com/certhosting/certhosting/pkg/ca"
)

// How an ACME problem document (RFC 8555 §6.7) reaches the lifecycle service. The ca contract
// has two outcomes: a verdict (the CA decided; the certificate moves to VALIDATION_FAILED and a
// support case opens) or an error (try again later). A problem is a verdict only when asking again
// cannot change the answer.
//
//   - Domain control not shown (unauthorized, dns, incorrectResponse, connection, tls): ReasonDNS.
//     For this client that means the CNAME is missing or wrong, which the customer can fix.
//   - caa: ReasonCAA.
//   - Everything else the CA refuses about the application itself (rejectedIdentifier, badCSR,
//     badSignatureAlgorithm, unsupportedIdentifier, malformed, invalidProfile, ...): ReasonPolicy.
//   - Transient: rateLimited, serverInternal, badNonce (lego retries it itself first),
//     orderNotReady (a race between our poll and the CA), and the problems about our account or
//     configuration (accountDoesNotExist, externalAccountRequired, invalidContact,
//     unsupportedContact, badPublicKey, userActionRequired): those are the operator's to fix, and
//     rejecting a customer's application for them would be wrong. Network errors, timeouts and
//     answers that are not problem documents are transient too.
//   - A type this table does not know is final when the CA answered 4xx, transient for 5xx.
//   - compound: the most specific reason among its subproblems (CAA, then DNS, then policy).
var problemReasons = map[string]ca.Reason{
	acme.UnauthorizedErrorType:          ca.ReasonDNS,
	acme.DNSErrorType:                   ca.ReasonDNS,
	acme.IncorrectResponseErrorType:     ca.ReasonDNS,
	acme.ConnectionErrorType:            ca.ReasonDNS,
	acme.TLSErrorType:                   ca.ReasonDNS,
	acme.CaaErrorType:                   ca.ReasonCAA,
	acme.RejectedIdentifierErrorType:    ca.ReasonPolicy,
	acme.BadCSRErrorType:                ca.ReasonPolicy,
	acme.BadSignatureAlgorithmErrorType: ca.ReasonPolicy,
	acme.UnsupportedIdentifierErrorType: ca.ReasonPolicy,
	acme.MalformedErrorType:             ca.ReasonPolicy,
	acme.InvalidProfileErrorType:        ca.ReasonPolicy,
	acme.AlreadyReplacedErrorType:       ca.ReasonPolicy, // only if it survives the retry without replaces
	acme.BadRevocationReasonErrorType:   ca.ReasonPolicy,
	acme.AlreadyRevokedErrorType:        ca.ReasonPolicy,
}

// transientProblems are the problem types that never make a verdict.
var transientProblems = map[string]bool{
	acme.RateLimitedErrorType:             true,
	acme.ServerInternalErrorType:          true,
	acme.BadNonceErrorType:                true,
	acme.OrderNotReadyErrorType:           true,
	acme.AccountDoesNotExistErrorType:     true,
	acme.ExternalAccountRequiredErrorType: true,
	acme.InvalidContactErrorType:          true,
	acme.UnsupportedContactErrorType:      true,
	acme.BadPublicKeyErrorType:            true,
	acme.UserActionRequiredErrorType:      true,
}

// classify reports whether a problem is a final refusal and, if so, its reason.
func classify(p *acme.ProblemDetails) (reason ca.Reason, final bool) {
	if p == nil {
		return "", false
	}
	if p.Type == acme.CompoundErrorType {
		return classifyCompound(p.SubProblems)
	}
	if transientProblems[p.Type] {
		return "", false
	}
	if r, ok := problemReasons[p.Type]; ok {
		return r, true
	}
	if p.HTTPStatus >= 500 || p.HTTPStatus == http.StatusTooManyRequests || p.HTTPStatus == 0 {
		return "", false
	}
	return ca.ReasonPolicy, true
}

// classifyCompound is the reason of a compound problem: CAA when any subproblem is about CAA,
// else DNS when any is about domain control, else policy; transient when every subproblem is.
func classifyCompound(subs []acme.SubProblem) (ca.Reason, bool) {
	found := map[ca.Reason]bool{}
	for _, s := range subs {
		if r, final := classify(&acme.ProblemDetails{Type: s.Type, HTTPStatus: http.StatusForbidden}); final {
			found[r] = true
		}
	}
	for _, r := range []ca.Reason{ca.ReasonCAA, ca.ReasonDNS, ca.ReasonPolicy} {
		if found[r] {
			return r, true
		}
	}
	if len(subs) == 0 {
		return ca.ReasonPolicy, true
	}
	return "", false
}

// classifyRequest is classify for a refusal of a request (new-order, finalize) rather than of a
// validation: there "unauthorized" means the CA will not do this for this account (a CSR whose
// names differ from the order's, a replaced certificate of another account), not that the
// customer's DNS is wrong, so a domain-control reason becomes ReasonPolicy.
func classifyRequest(p *acme.ProblemDetails) (ca.Reason, bool) {
	reason, final := classify(p)
	if final && reason == ca.ReasonDNS {
		reason = ca.ReasonPolicy
	}
	return reason, final
}

// problemOf is the problem document err carries, if any.
func problemOf(err error) *acme.ProblemDetails {
	if p, ok := errors.AsType[*acme.ProblemDetails](err); ok {
		return p
	}
	return nil
}

// problemMessage is a problem as a rejection message: the short type, the detail, and the
// subproblems' identifiers and details.
func problemMessage(p *acme.ProblemDetails) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", shortType(p.Type), p.Detail)
	for _, s := range p.SubProblems {
		fmt.Fprintf(&b, "; %s %s: %s", s.Identifier.Value, shortType(s.Type), s.Detail)
	}
	return b.String()
}

func shortType(t string) string {
	if s, ok := strings.CutPrefix(t, "urn:ietf:params:acme:error:"); ok {
		return s
	}
	if t == "" {
		return "problem"
	}
	return t
}
