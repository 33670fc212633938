// Package ids makes and checks the services' resource identifiers: a short type prefix and a ULID
// ("ord_01JD3Y4M6Q0H3T5R2E8W9XKZ7B"). The prefix tells a reader (and a support engineer reading a
// log) what an id names; the ULID sorts by creation time, which keeps inserts at the end of the
// primary-key index and makes "newest first" a plain ORDER BY id DESC.
package ids

import (
	"crypto/rand"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// Kind is the prefix of one type of identifier.
type Kind string

// The identifier kinds of both services.
const (
	Order       Kind = "ord"
	Bundle      Kind = "bdl"
	Certificate Kind = "crt"
	Account     Kind = "acc"
	APIKey      Kind = "key"
	AuditEvent  Kind = "aud"
	Application Kind = "app"
	Issuance    Kind = "iss"
	SupportCase Kind = "case"
	Operation   Kind = "op"
	Deployment  Kind = "dpl"
	// WebhookEndpoint, WebhookDelivery and Email are the lifecycle service's notifications.
	WebhookEndpoint Kind = "whe"
	WebhookDelivery Kind = "whd"
	Email           Kind = "eml"
)

var (
	mu      sync.Mutex
	entropy = ulid.Monotonic(rand.Reader, 0)
)

// New returns a fresh identifier of kind k made at time t (callers pass their clock's time, so
// ids made under a fake clock sort with that clock).
func New(k Kind, t time.Time) string {
	mu.Lock()
	id := ulid.MustNew(ulid.Timestamp(t), entropy)
	mu.Unlock()
	return string(k) + "_" + id.String()
}

// Valid reports whether s is a well-formed identifier of kind k.
func Valid(k Kind, s string) bool {
	rest, ok := strings.CutPrefix(s, string(k)+"_")
	if !ok || len(rest) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(rest)
	return err == nil
}

// Check returns an InvalidArgument error naming field when s is not a well-formed identifier of
// kind k, and nil otherwise.
func Check(field string, k Kind, s string) error {
	if s == "" {
		return apierr.InvalidArgument(field, "is required")
	}
	if !Valid(k, s) {
		return apierr.InvalidArgument(field, "malformed: want %q followed by 26 base32 characters", string(k)+"_")
	}
	return nil
}
