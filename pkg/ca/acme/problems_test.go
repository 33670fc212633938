package acme

import (
	"net/http"
	"testing"

	"github.com/go-acme/lego/v5/acme"

	"github.com/certhosting/certhosting/pkg/ca"
)

// TestClassify is the problem → verdict table: what is final and why, what is transient.
func TestClassify(t *testing.T) {
	const ns = "urn:ietf:params:acme:error:"
	tests := []struct {
		typ        string
		status     int
		subs       []string
		wantReason ca.Reason
		wantFinal  bool
	}{
		{"unauthorized", 403, nil, ca.ReasonDNS, true},
		{"dns", 400, nil, ca.ReasonDNS, true},
		{"incorrectResponse", 403, nil, ca.ReasonDNS, true},
		{"connection", 400, nil, ca.ReasonDNS, true},
		{"tls", 400, nil, ca.ReasonDNS, true},
		{"caa", 403, nil, ca.ReasonCAA, true},
		{"rejectedIdentifier", 400, nil, ca.ReasonPolicy, true},
		{"badCSR", 400, nil, ca.ReasonPolicy, true},
		{"badSignatureAlgorithm", 400, nil, ca.ReasonPolicy, true},
		{"unsupportedIdentifier", 400, nil, ca.ReasonPolicy, true},
		{"malformed", 400, nil, ca.ReasonPolicy, true},
		{"invalidProfile", 400, nil, ca.ReasonPolicy, true},
		{"alreadyReplaced", 409, nil, ca.ReasonPolicy, true},
		{"rateLimited", 429, nil, "", false},
		{"serverInternal", 500, nil, "", false},
		{"badNonce", 400, nil, "", false},
		{"orderNotReady", 403, nil, "", false},
		{"accountDoesNotExist", 400, nil, "", false},
		{"externalAccountRequired", 400, nil, "", false},
		{"invalidContact", 400, nil, "", false},
		{"unsupportedContact", 400, nil, "", false},
		{"badPublicKey", 400, nil, "", false},
		{"userActionRequired", 403, nil, "", false},
		{"somethingNew", 403, nil, ca.ReasonPolicy, true},
		{"somethingNew", 503, nil, "", false},
		{"somethingNew", 429, nil, "", false},
		{"compound", 403, []string{"dns", "caa"}, ca.ReasonCAA, true},
		{"compound", 403, []string{"rejectedIdentifier", "unauthorized"}, ca.ReasonDNS, true},
		{"compound", 403, []string{"rejectedIdentifier"}, ca.ReasonPolicy, true},
		{"compound", 403, []string{"serverInternal"}, "", false},
		{"compound", 403, nil, ca.ReasonPolicy, true},
	}
	for _, tc := range tests {
		p := &acme.ProblemDetails{Type: ns + tc.typ, HTTPStatus: tc.status, Detail: "detail"}
		for _, s := range tc.subs {
			p.SubProblems = append(p.SubProblems, acme.SubProblem{Type: ns + s, Identifier: acme.Identifier{Type: "dns", Value: "x.example"}})
		}
		reason, final := classify(p)
		if reason != tc.wantReason || final != tc.wantFinal {
			t.Errorf("classify(%s %d %v) = %q, %v; want %q, %v", tc.typ, tc.status, tc.subs, reason, final, tc.wantReason, tc.wantFinal)
		}
	}
	for _, typ := range []string{"unauthorized", "dns", "connection"} {
		if r, final := classifyRequest(&acme.ProblemDetails{Type: ns + typ, HTTPStatus: 403}); r != ca.ReasonPolicy || !final {
			t.Errorf("classifyRequest(%s) = %q, %v; want policy: outside validation it is no statement about DNS", typ, r, final)
		}
	}
	if r, _ := classifyRequest(&acme.ProblemDetails{Type: ns + "caa", HTTPStatus: 403}); r != ca.ReasonCAA {
		t.Errorf("classifyRequest(caa) = %q, want CAA", r)
	}
	if _, final := classify(nil); final {
		t.Error("classify(nil) is final; want transient (no problem document: a network error)")
	}
	if _, final := classify(&acme.ProblemDetails{Type: "about:blank", HTTPStatus: http.StatusNotFound}); !final {
		t.Error("a 404 problem of an unknown type is transient; want final")
	}
}
