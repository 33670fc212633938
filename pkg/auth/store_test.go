package auth_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// newStore is an identity store of the test's own, under a fake clock.
func newStore(t *testing.T, d db.Dialect) (*auth.Store, *clockwork.FakeClock) {
	t.Helper()
	clk := clockwork.NewFakeClock()
	st, err := auth.OpenStore(context.Background(), dbtest.URL(t, d, "identity"), clk, grpctest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, clk
}

// newStoreAt opens the identity database at path (one the admin commands wrote).
func newStoreAt(t *testing.T, path string) *auth.Store {
	t.Helper()
	st, err := auth.OpenStore(context.Background(), path, clockwork.NewFakeClock(), grpctest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestCreateAccount(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		st, clk := newStore(t, d)
		ctx := context.Background()
		a, err := st.CreateAccount(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if !ids.Valid(ids.Account, a.ID) || a.Name != "acme" || a.CreateTime != clk.Now().UnixMicro() {
			t.Errorf("CreateAccount = %+v, want an acc_ id, the name and the clock's time", a)
		}
		got, ok, err := st.FindAccount(ctx, "acme")
		if err != nil || !ok || got != a {
			t.Errorf("FindAccount(acme) = %+v, %v, %v; want %+v", got, ok, err, a)
		}
		if _, ok, err := st.FindAccount(ctx, "nobody"); ok || err != nil {
			t.Errorf("FindAccount(nobody) = %v, %v; want false, nil", ok, err)
		}
		for _, name := range []string{"", "   "} {
			if _, err := st.CreateAccount(ctx, name); err == nil {
				t.Errorf("CreateAccount(%q) succeeded", name)
			}
		}
	})
}

func TestCreateKey(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		st, _ := newStore(t, d)
		ctx := context.Background()
		a, err := st.CreateAccount(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		k, secret, err := st.CreateKey(ctx, a.ID, auth.RoleSupport, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !ids.Valid(ids.APIKey, k.ID) || k.AccountID != a.ID || k.Role != auth.RoleSupport || k.Name != "alice" || k.RevokeTime.Valid {
			t.Errorf("CreateKey = %+v", k)
		}
		if !strings.HasPrefix(secret, "chk_") || len(secret) != 47 {
			t.Errorf("secret %q, want chk_ and 43 base64url characters", secret)
		}
		_, secret2, err := st.CreateKey(ctx, a.ID, auth.RoleSupport, "alice")
		if err != nil || secret2 == secret {
			t.Errorf("second key: secret %q, err %v; want a different secret", secret2, err)
		}

		for name, bad := range map[string]struct {
			account string
			role    auth.Role
		}{
			"unknown account": {ids.New(ids.Account, time.Now()), auth.RoleOwner},
			"unknown role":    {a.ID, auth.Role("admin")},
			"empty role":      {a.ID, ""},
		} {
			t.Run(name, func(t *testing.T) {
				if k, _, err := st.CreateKey(ctx, bad.account, bad.role, "x"); err == nil {
					t.Errorf("CreateKey = %+v, want an error", k)
				}
			})
		}
	})
}

func TestRevokeAndListKeys(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		st, clk := newStore(t, d)
		ctx := context.Background()
		c := grpctest.NewCaller(t, st, "acme", auth.RoleOwner)
		clk.Advance(time.Millisecond) // the second key's id sorts after the first
		k2, _, err := st.CreateKey(ctx, c.AccountID, auth.RoleService, "svc")
		if err != nil {
			t.Fatal(err)
		}
		other := grpctest.NewCaller(t, st, "other", auth.RoleOwner)

		clk.Advance(time.Hour)
		if err := st.RevokeKey(ctx, c.KeyID); err != nil {
			t.Fatalf("RevokeKey: %v", err)
		}
		if err := st.RevokeKey(ctx, c.KeyID); err == nil {
			t.Error("revoking a revoked key succeeded")
		}
		if err := st.RevokeKey(ctx, ids.New(ids.APIKey, clk.Now())); err == nil {
			t.Error("revoking an unknown key succeeded")
		}

		keys, err := st.ListKeys(ctx, c.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		gotIDs := []string{}
		for _, k := range keys {
			gotIDs = append(gotIDs, k.ID)
		}
		if !slices.Equal(gotIDs, []string{c.KeyID, k2.ID}) {
			t.Fatalf("ListKeys ids = %v, want [%s %s] (oldest first, this account only)", gotIDs, c.KeyID, k2.ID)
		}
		if !keys[0].RevokeTime.Valid || keys[0].RevokeTime.Int64 != clk.Now().UnixMicro() {
			t.Errorf("revoked key's RevokeTime = %v, want the revocation time", keys[0].RevokeTime)
		}
		if keys[1].RevokeTime.Valid || keys[1].Role != auth.RoleService {
			t.Errorf("second key = %+v, want an active service key", keys[1])
		}
		if ks, _ := st.ListKeys(ctx, other.AccountID); len(ks) != 1 || ks[0].ID != other.KeyID {
			t.Errorf("other account's keys = %+v", ks)
		}
	})
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want auth.Role
	}{
		{"owner", auth.RoleOwner}, {"deployer", auth.RoleDeployer}, {"reader", auth.RoleReader},
		{"support", auth.RoleSupport}, {"service", auth.RoleService},
		{"customer", auth.RoleOwner}, // the role before least privilege
	} {
		if got, err := auth.ParseRole(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseRole(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, r := range []string{"", "Owner", "admin"} {
		if _, err := auth.ParseRole(r); err == nil {
			t.Errorf("ParseRole(%q) succeeded", r)
		}
	}
}
