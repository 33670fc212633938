package localca

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
)

func TestCheckDomain(t *testing.T) {
	tests := []struct {
		domain string
		want   string // substring of the problem; "" for none
	}{
		{"example.com", ""},
		{"shop.example.com", ""},
		{"*.example.com", ""},
		{"xn--bcher-kva.example", ""},
		{"a-b.example.com", ""},
		{"com", "at least two labels"},
		{"*.com", "at least two labels"},
		{"example.com.", "empty label"},
		{"a..example.com", "empty label"},
		{"shop.*.example.com", "wildcard"},
		{"*.*.example.com", "wildcard"},
		{"-shop.example.com", "hyphen"},
		{"shop-.example.com", "hyphen"},
		{"sh_op.example.com", `character '_'`},
		{"shop.example.com:443", `character ':'`},
		{"192.0.2.1", "IP address"},
		{"example.123", "numeric label"},
		{strings.Repeat("a", 64) + ".example.com", "longer than 63"},
		{strings.Repeat("abcdefghi.", 26) + "com", "longer than 253"},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			got := checkDomain(tc.domain)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("checkDomain(%q) = %q, want a problem containing %q", tc.domain, got, tc.want)
			}
		})
	}
}

func TestOrganizationRule(t *testing.T) {
	good := ca.Organization{LegalName: "Example Shop GmbH", Country: "DE", Locality: "Berlin", RegistrationNumber: "HRB 12345"}
	with := func(f func(o *ca.Organization)) *ca.Organization { o := good; f(&o); return &o }
	rule := OrganizationRule{RejectLegalName: regexp.MustCompile(`(?i)fraud`)}
	tests := []struct {
		name string
		org  *ca.Organization
		want string
	}{
		{"good", &good, ""},
		{"missing", nil, "missing"},
		{"no legal name", with(func(o *ca.Organization) { o.LegalName = "  " }), "legal name is empty"},
		{"country of three letters", with(func(o *ca.Organization) { o.Country = "DEU" }), `country "DEU"`},
		{"country in lower case", with(func(o *ca.Organization) { o.Country = "de" }), `country "de"`},
		{"no locality", with(func(o *ca.Organization) { o.Locality = "" }), "locality is empty"},
		{"no registration number", with(func(o *ca.Organization) { o.RegistrationNumber = "" }), "registration number is empty"},
		{"rejected by the rule", with(func(o *ca.Organization) { o.LegalName = "Fraud Ltd" }), `"Fraud Ltd" could not be verified`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rule.Check(tc.org)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Check = %q, want a problem containing %q", got, tc.want)
			}
		})
	}
	if got := (OrganizationRule{}).Check(with(func(o *ca.Organization) { o.LegalName = "Fraud Ltd" })); got != "" {
		t.Errorf("a rule without RejectLegalName rejected a well-formed organization: %q", got)
	}
}

func TestValidity(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 30, 15, 700_000_000, time.UTC)
	start := now.Truncate(time.Second)
	day := 24 * time.Hour
	issuerEnd := start.Add(365 * day)
	tests := []struct {
		name      string
		requested time.Time
		lifetime  time.Duration
		max       time.Duration
		want      time.Time
	}{
		{"no request: the maximum", time.Time{}, 0, 200 * day, start.Add(200 * day)},
		{"request inside the maximum", start.Add(90 * day), 0, 200 * day, start.Add(90 * day)},
		{"request beyond the maximum", start.Add(300 * day), 0, 200 * day, start.Add(200 * day)},
		{"request truncated to the second", start.Add(90*day + 500*time.Millisecond), 0, 200 * day, start.Add(90 * day)},
		{"capped by the issuer", time.Time{}, 0, 400 * day, issuerEnd},
		{"lifetime inside the maximum", time.Time{}, 365 * day, 398 * day, start.Add(365 * day)},
		{"lifetime beyond the maximum", time.Time{}, 365 * day, 200 * day, start.Add(200 * day)},
		{"an end wins over a lifetime", start.Add(30 * day), 365 * day, 398 * day, start.Add(30 * day)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nb, na := validity(now, tc.requested, tc.lifetime, tc.max, issuerEnd)
			if !nb.Equal(start) || !na.Equal(tc.want) {
				t.Errorf("validity = [%s, %s], want [%s, %s]", nb, na, start, tc.want)
			}
		})
	}
}

func TestInstructions(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	got := instructions(secret, "bdl_1", []string{"shop.example.com", "*.shop.example.com", "example.org"})
	if len(got) != 2 || got[0].Name != "_certhosting-validation.shop.example.com" || got[1].Name != "_certhosting-validation.example.org" {
		t.Fatalf("instructions = %+v, want one record per base domain, in order", got)
	}
	for _, r := range got {
		if r.Type != "TXT" || len(r.Value) != 43 { // base64url of 32 bytes, unpadded
			t.Errorf("record %+v: want TXT with a 43-character value", r)
		}
	}
	if again := instructions(secret, "bdl_1", []string{"shop.example.com"}); again[0] != got[0] {
		t.Errorf("same binding, same base: %+v, want %+v", again[0], got[0])
	}
	if other := instructions(secret, "bdl_2", []string{"shop.example.com"}); other[0].Value == got[0].Value {
		t.Error("another binding got the same value")
	}
	if other := instructions([]byte("another secret of thirty-two by"), "bdl_1", []string{"shop.example.com"}); other[0].Value == got[0].Value {
		t.Error("another CA secret gave the same value")
	}
}
