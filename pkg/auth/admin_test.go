package auth_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/auth"
)

// principal verifies key with a verifier of its own (so nothing is cached from earlier checks).
func principal(t *testing.T, st *auth.Store, key string) (auth.Principal, error) {
	t.Helper()
	return auth.NewVerifier(st, clockwork.NewFakeClock(), 0).Verify(context.Background(), key)
}

func readKey(t *testing.T, path string) string {
	t.Helper()
	k, err := auth.ReadKeyFile(path)
	if err != nil {
		t.Fatalf("ReadKeyFile(%s): %v", path, err)
	}
	return k
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, dbtest.FromEnv(t))
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "var")
	demoPath, svcPath := filepath.Join(dir, "demo-api-key"), filepath.Join(dir, "order-service-key")

	demo, err := auth.Bootstrap(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := readKey(t, demoPath); got != demo {
		t.Errorf("demo-api-key holds %q, Bootstrap returned %q", got, demo)
	}
	for _, path := range []string{demoPath, svcPath} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", filepath.Base(path), fi.Mode().Perm(), err)
		}
	}
	demoP, err := principal(t, st, demo)
	if err != nil || demoP.Role != auth.RoleOwner {
		t.Fatalf("demo key: %+v, %v; want a customer key", demoP, err)
	}
	svc := readKey(t, svcPath)
	svcP, err := principal(t, st, svc)
	if err != nil || svcP.Role != auth.RoleService || svcP.AccountID == demoP.AccountID {
		t.Fatalf("order service key: %+v, %v; want a service key of its own account", svcP, err)
	}

	// Again: nothing changes.
	again, err := auth.Bootstrap(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if again != demo || readKey(t, svcPath) != svc {
		t.Errorf("second Bootstrap changed the keys")
	}
	if keys, _ := st.ListKeys(ctx, demoP.AccountID); len(keys) != 1 {
		t.Errorf("demo account has %d keys after two runs, want 1", len(keys))
	}

	// A revoked demo key is replaced, in the same account; the service key stays.
	if err := st.RevokeKey(ctx, demoP.KeyID); err != nil {
		t.Fatal(err)
	}
	replaced, err := auth.Bootstrap(ctx, st, dir)
	if err != nil {
		t.Fatal(err)
	}
	if replaced == demo || readKey(t, demoPath) != replaced {
		t.Errorf("Bootstrap after revocation kept the revoked key")
	}
	if p, err := principal(t, st, replaced); err != nil || p.AccountID != demoP.AccountID || p.Role != auth.RoleOwner {
		t.Errorf("replacement key: %+v, %v; want a customer key of the demo account %s", p, err, demoP.AccountID)
	}
	if readKey(t, svcPath) != svc {
		t.Errorf("Bootstrap replaced the still valid service key")
	}
}

// A key file holding something other than a valid key of the right role is replaced.
func TestBootstrapReplacesWrongKeyFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content func(svcKey string) string
	}{
		{"service key in the demo file", func(svc string) string { return svc }},
		{"garbage", func(string) string { return "not a key" }},
		{"empty", func(string) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, _ := newStore(t, dbtest.FromEnv(t))
			dir := t.TempDir()
			if _, err := auth.Bootstrap(context.Background(), st, dir); err != nil {
				t.Fatal(err)
			}
			demoPath := filepath.Join(dir, "demo-api-key")
			bad := tc.content(readKey(t, filepath.Join(dir, "order-service-key")))
			if err := os.WriteFile(demoPath, []byte(bad), 0o600); err != nil {
				t.Fatal(err)
			}
			demo, err := auth.Bootstrap(context.Background(), st, dir)
			if err != nil {
				t.Fatal(err)
			}
			if p, err := principal(t, st, demo); err != nil || p.Role != auth.RoleOwner || demo == bad {
				t.Errorf("demo key after Bootstrap: %+v, %v; want a new customer key", p, err)
			}
		})
	}
}

func TestReadKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := "chk_" + strings.Repeat("x", 43)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if got, err := auth.ReadKeyFile(write("ok", "  "+key+"\n\n")); err != nil || got != key {
		t.Errorf("ReadKeyFile(key with whitespace) = %q, %v; want %q", got, err, key)
	}
	for name, content := range map[string]string{"short": "chk_abc", "empty": "", "two keys": key + "\n" + key} {
		if got, err := auth.ReadKeyFile(write(name, content)); err == nil {
			t.Errorf("ReadKeyFile(%s) = %q, want an error", name, got)
		}
	}
	if _, err := auth.ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadKeyFile(missing) succeeded")
	}
}

// admin runs an admin command against the identity database at dbPath and returns its stdout.
func admin(t *testing.T, dbPath string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := append([]string{args[0], "-identity-db", dbPath}, args[1:]...)
	err := auth.RunAdmin(context.Background(), "certhosting-test", cmd, &out)
	return strings.TrimSpace(out.String()), err
}

func TestRunAdmin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "identity.db")
	must := func(out string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	account := must(admin(t, dbPath, "create-account", "-name", "acme"))
	if !strings.HasPrefix(account, "acc_") {
		t.Fatalf("create-account printed %q, want an account id", account)
	}
	supportKey := must(admin(t, dbPath, "create-key", "-account", account, "-role", "support", "-name", "alice"))
	keyFile := filepath.Join(dir, "keys", "customer-key")
	if out := must(admin(t, dbPath, "create-key", "-account", account, "-name", "app", "-out", keyFile)); out != "" {
		t.Errorf("create-key -out printed %q, want nothing (the secret goes to the file)", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	customerKey := readKey(t, keyFile)

	lines := strings.Split(must(admin(t, dbPath, "list-keys", "-account", account)), "\n")
	if len(lines) != 2 {
		t.Fatalf("list-keys printed %q, want two keys", lines)
	}
	first := strings.Split(lines[0], "\t")
	if len(first) != 4 || first[1] != "support" || first[2] != "active" || first[3] != "alice" {
		t.Errorf("list-keys first line %q, want id, support, active, alice", lines[0])
	}
	if strings.Contains(strings.Join(lines, "\n"), supportKey) {
		t.Errorf("list-keys printed a secret")
	}
	must(admin(t, dbPath, "revoke-key", "-key", first[0]))
	lines = strings.Split(must(admin(t, dbPath, "list-keys", "-account", account)), "\n")
	if !strings.Contains(lines[0], "\trevoked\t") || !strings.Contains(lines[1], "\tactive\t") {
		t.Errorf("after revoke-key: %q, want the first key revoked and the second active", lines)
	}

	// The keys the commands made are the ones the services accept.
	st := newStoreAt(t, dbPath)
	if _, err := principal(t, st, supportKey); err == nil {
		t.Errorf("revoked support key still verifies")
	}
	if p, err := principal(t, st, customerKey); err != nil || p.AccountID != account || p.Role != auth.RoleOwner {
		t.Errorf("customer key from -out: %+v, %v", p, err)
	}

	bootDir := filepath.Join(dir, "boot")
	demo := must(admin(t, dbPath, "bootstrap", "-dir", bootDir))
	if readKey(t, filepath.Join(bootDir, "demo-api-key")) != demo {
		t.Errorf("bootstrap printed a key other than the one in demo-api-key")
	}
}

func TestRunAdminErrors(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "identity.db")
	tests := []struct {
		name string
		args []string
	}{
		{"unknown command", []string{"frobnicate"}},
		{"create-key without account", []string{"create-key", "-name", "x"}},
		{"create-key with unknown role", []string{"create-key", "-account", "acc_x", "-role", "root"}},
		{"create-key for missing account", []string{"create-key", "-account", "acc_01JD3Y4M6Q0H3T5R2E8W9XKZ7B"}},
		{"create-account without name", []string{"create-account"}},
		{"revoke unknown key", []string{"revoke-key", "-key", "key_nope"}},
		{"unknown flag", []string{"list-keys", "-bogus"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := admin(t, dbPath, tc.args...); err == nil {
				t.Errorf("RunAdmin(%v) succeeded, printing %q", tc.args, out)
			}
		})
	}
	var out bytes.Buffer
	if err := auth.RunAdmin(context.Background(), "prog", nil, &out); err != nil || !strings.Contains(out.String(), "usage: prog admin") {
		t.Errorf("RunAdmin with no command = %v, %q; want the usage", err, out.String())
	}
}
