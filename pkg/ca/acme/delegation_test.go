package acme

import (
	"regexp"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
)

// TestDelegation: the CNAME is a pure function of binding and base domain: a wildcard shares its
// base domain's, another binding or domain gets another target, and the label is a host name label.
func TestDelegation(t *testing.T) {
	label := regexp.MustCompile(`^[a-z2-7]{32}\.acme\.certhosting\.test$`)
	base := Delegation("acme.certhosting.test", "bdl_1", "shop.example.com")
	if base.Name != "_acme-challenge.shop.example.com" || base.Type != "CNAME" || !label.MatchString(base.Value) {
		t.Fatalf("Delegation = %+v", base)
	}
	tests := []struct {
		name             string
		binding, domain  string
		wantSameAsBase   bool
		wantNameUnchange bool
	}{
		{"same inputs", "bdl_1", "shop.example.com", true, true},
		{"wildcard uses its base domain", "bdl_1", "*.shop.example.com", true, true},
		{"case and trailing dot do not matter", "bdl_1", "Shop.Example.COM.", true, true},
		{"another binding", "bdl_2", "shop.example.com", false, true},
		{"another domain", "bdl_1", "www.example.com", false, false},
	}
	for _, tc := range tests {
		got := Delegation("acme.certhosting.test", tc.binding, tc.domain)
		if (got == base) != tc.wantSameAsBase || (got.Name == base.Name) != tc.wantNameUnchange {
			t.Errorf("%s: Delegation = %+v (base %+v)", tc.name, got, base)
		}
		if !label.MatchString(got.Value) {
			t.Errorf("%s: target %q is not <32 base32 chars>.<zone>", tc.name, got.Value)
		}
	}
	if n := len(instructions("acme.certhosting.test", "bdl_1", []string{"*.example.org", "example.org", "a.example.org"})); n != 2 {
		t.Errorf("instructions for a wildcard, its base and another name: %d CNAMEs, want 2", n)
	}
}

// TestDNS01Value: the TXT value is the one lego computes (with its CNAME lookup turned off).
func TestDNS01Value(t *testing.T) {
	t.Setenv("LEGO_DISABLE_CNAME_SUPPORT", "true")
	const keyAuth = "token-abc.thumbprint-xyz"
	want := dns01.GetChallengeInfo(t.Context(), "shop.example.com", keyAuth).Value
	if got := dns01Value(keyAuth); got != want {
		t.Errorf("dns01Value = %q, lego says %q", got, want)
	}
}

// TestParseRetryAfter: delay-seconds and HTTP dates, relative to the given time, bounded.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"-3", 0},
		{"999999999", maxRetryAfter},
		{"Tue, 01 Dec 2026 09:10:00 GMT", 10 * time.Minute},
		{"Tue, 01 Dec 2026 08:00:00 GMT", 0},
		{"soon", 0},
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
