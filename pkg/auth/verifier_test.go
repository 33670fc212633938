package auth_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
)

// verifierEnv is a store with one customer key and a verifier over it.
type verifierEnv struct {
	st  *auth.Store
	clk *clockwork.FakeClock
	c   grpctest.Caller
	v   *auth.Verifier
}

func newVerifierEnv(t *testing.T, ttl time.Duration) verifierEnv {
	t.Helper()
	st, clk := newStore(t, dbtest.FromEnv(t))
	return verifierEnv{st: st, clk: clk, c: grpctest.NewCaller(t, st, "acme", auth.RoleOwner), v: auth.NewVerifier(st, clk, ttl)}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	e := newVerifierEnv(t, time.Minute)
	p, err := e.v.Verify(context.Background(), e.c.Key)
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Principal{AccountID: e.c.AccountID, KeyID: e.c.KeyID, Role: auth.RoleOwner, Name: "acme key"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Verify = %+v, want %+v", p, want)
	}
}

// A verified key is trusted for the TTL: revoking it takes effect once the TTL has passed, not
// before (that is the bound the docs promise). A TTL of zero means DefaultCacheTTL.
func TestVerifyRevokedAfterTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ttl     time.Duration
		trusted time.Duration // how long the cached answer stands
	}{
		{"explicit TTL", 5 * time.Second, 5 * time.Second},
		{"default TTL", 0, auth.DefaultCacheTTL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newVerifierEnv(t, tc.ttl)
			ctx := context.Background()
			if _, err := e.v.Verify(ctx, e.c.Key); err != nil {
				t.Fatal(err)
			}
			if err := e.st.RevokeKey(ctx, e.c.KeyID); err != nil {
				t.Fatal(err)
			}
			e.clk.Advance(tc.trusted - time.Millisecond)
			if _, err := e.v.Verify(ctx, e.c.Key); err != nil {
				t.Errorf("Verify within the TTL after revocation = %v, want the cached principal", err)
			}
			e.clk.Advance(time.Millisecond)
			if _, err := e.v.Verify(ctx, e.c.Key); status.Code(err) != codes.Unauthenticated {
				t.Errorf("Verify once the TTL passed = %v, want Unauthenticated", err)
			}
			// A verifier that never saw the key refuses it at once.
			if _, err := auth.NewVerifier(e.st, e.clk, tc.ttl).Verify(ctx, e.c.Key); status.Code(err) != codes.Unauthenticated {
				t.Errorf("fresh verifier: Verify of a revoked key = %v, want Unauthenticated", err)
			}
		})
	}
}

// Keys that cannot be keys are refused without a database lookup: with the store closed they
// still get Unauthenticated, while a well-formed key reaches the (closed) store and fails there.
func TestVerifyMalformedWithoutDB(t *testing.T) {
	t.Parallel()
	e := newVerifierEnv(t, time.Minute)
	key := e.c.Key
	e.st.Close()
	for _, bad := range []string{
		"",
		"chk_",
		"chk_short",
		"xxx_" + key[4:],     // wrong prefix
		key + "A",            // one character too many
		key[:len(key)-1],     // one too few
		strings.ToUpper(key), // CHK_
	} {
		if _, err := e.v.Verify(context.Background(), bad); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Verify(%q) = %v, want Unauthenticated without touching the store", bad, err)
		}
	}
	if _, err := e.v.Verify(context.Background(), key); err == nil || status.Code(err) == codes.Unauthenticated {
		t.Errorf("Verify of a well-formed key on a closed store = %v, want a store error", err)
	}
}

// A well-formed key that is not in the store is refused, and the refusal spoils nothing for
// valid keys.
func TestVerifyUnknownKey(t *testing.T) {
	t.Parallel()
	e := newVerifierEnv(t, time.Minute)
	unknown := "chk_" + strings.Repeat("A", 43)
	if _, err := e.v.Verify(context.Background(), unknown); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Verify(unknown) = %v, want Unauthenticated", err)
	}
	if _, err := e.v.Verify(context.Background(), e.c.Key); err != nil {
		t.Errorf("Verify(known) after a refusal = %v", err)
	}
}
