package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// The Standard Webhooks spec's published test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(1614265330, 0)

func TestSignatureHeadersSpecVector(t *testing.T) {
	h, err := SignatureHeaders(vectorID, vectorTime, []byte(vectorBody), vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Get("webhook-signature"); got != vectorSig {
		t.Errorf("webhook-signature = %q, want the spec's %q", got, vectorSig)
	}
	if h.Get("webhook-id") != vectorID || h.Get("webhook-timestamp") != "1614265330" {
		t.Errorf("headers %v", h)
	}
}

// TestSignatureHeadersTwoSecrets: with a previous secret, each secret's signature is in the
// header, space-separated, the current first; each is HMAC-SHA256 over id.timestamp.body.
func TestSignatureHeadersTwoSecrets(t *testing.T) {
	other := NewSecret()
	h, err := SignatureHeaders(vectorID, vectorTime, []byte(vectorBody), other, vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	sigs := strings.Fields(h.Get("webhook-signature"))
	if len(sigs) != 2 || sigs[1] != vectorSig {
		t.Fatalf("signatures %q, want two, the second the vector's", sigs)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(other, SecretPrefix))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(vectorID + ".1614265330." + vectorBody))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); sigs[0] != want {
		t.Errorf("first signature %q, want %q", sigs[0], want)
	}
	if _, err := SignatureHeaders("x", vectorTime, nil, "not-a-secret!"); err == nil {
		t.Error("a malformed secret signed")
	}
}

func TestNewSecret(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, SecretPrefix))
	if !strings.HasPrefix(a, SecretPrefix) || err != nil || len(raw) != 32 || a == b {
		t.Errorf("secrets %q, %q: want whsec_ and base64 of 32 random bytes", a, b)
	}
}

func TestKindOf(t *testing.T) {
	k := func(n lifecyclev1.NotificationKind) lifecyclev1.NotificationKind { return n }
	tests := []struct {
		event        string
		renewal, dns bool
		want         lifecyclev1.NotificationKind
		ok           bool
	}{
		{store.EventIssued, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED), true},
		{store.EventIssued, true, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED), true},
		{store.EventApplicationSubmitted, false, true, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_RECORDS_TO_PUBLISH), true},
		{store.EventApplicationSubmitted, false, false, 0, false},
		{store.EventRenewalFailed, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED), true},
		{store.EventSupportCaseOpened, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_OPENED), true},
		{store.EventSupportCaseUpdated, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED), true},
		{store.EventSupportCaseResolved, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED), true},
		{store.EventCoverageLapsed, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_COVERAGE_LAPSED), true},
		{store.EventHostingEnding, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_HOSTING_ENDING), true},
		{store.EventExpiryReminder, false, false, k(lifecyclev1.NotificationKind_NOTIFICATION_KIND_EXPIRY_REMINDER), true},
		{store.EventCreated, false, false, 0, false},
		{store.EventHosted, false, false, 0, false},
		{store.EventSuperseded, false, false, 0, false},
	}
	for _, tc := range tests {
		got, ok := KindOf(tc.event, tc.renewal, tc.dns)
		if got != tc.want || ok != tc.ok {
			t.Errorf("KindOf(%q, renewal %v, dns %v) = %v, %v; want %v, %v", tc.event, tc.renewal, tc.dns, got, ok, tc.want, tc.ok)
		}
	}
	// Every kind but UNSPECIFIED is produced by some event type.
	seen := map[lifecyclev1.NotificationKind]bool{}
	for _, tc := range tests {
		seen[tc.want] = true
	}
	for v := range lifecyclev1.NotificationKind_name {
		if k := lifecyclev1.NotificationKind(v); k != 0 && !seen[k] {
			t.Errorf("no event type notifies %v", k)
		}
	}
}

func TestWantsAndKindNames(t *testing.T) {
	issued := lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED
	if KindName(issued) != "ISSUED" || ParseKind("ISSUED") != issued || ParseKind("nope") != 0 {
		t.Error("KindName/ParseKind do not round-trip")
	}
	tests := []struct {
		kinds string
		want  bool
	}{{"", true}, {"ISSUED", true}, {"RENEWED ISSUED", true}, {"RENEWED", false}, {"ISSUEDX", false}}
	for _, tc := range tests {
		if got := Wants(tc.kinds, issued); got != tc.want {
			t.Errorf("Wants(%q, ISSUED) = %v, want %v", tc.kinds, got, tc.want)
		}
	}
}

func TestPublicOnly(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"93.184.215.14:443", true},
		{"[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443", true},
		{"127.0.0.1:443", false},
		{"[::1]:443", false},
		{"10.1.2.3:443", false},
		{"172.16.0.1:443", false},
		{"192.168.1.1:443", false},
		{"169.254.169.254:80", false},
		{"[fe80::1]:443", false},
		{"[fd00::1]:443", false},
		{"100.64.0.1:443", false},
		{"0.0.0.0:443", false},
		{"224.0.0.1:443", false},
		{"[::ffff:127.0.0.1]:443", false},
	}
	for _, tc := range tests {
		if err := PublicOnly("tcp", tc.addr, nil); (err == nil) != tc.ok {
			t.Errorf("PublicOnly(%s) = %v, want allowed %v", tc.addr, err, tc.ok)
		}
	}
}
