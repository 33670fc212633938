package auth

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/db"
)

// TestScopedKeysMigration: a key made before roles had least privilege (role customer) works after
// the upgrade as an owner key, unlimited and without expiry.
func TestScopedKeysMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "identity.db")
	first := fstest.MapFS{}
	b, err := fs.ReadFile(Migrations(), "00001_identity.sql")
	if err != nil {
		t.Fatal(err)
	}
	first["00001_identity.sql"] = &fstest.MapFile{Data: b}
	old, err := db.Open(ctx, path, db.Options{Migrations: first})
	if err != nil {
		t.Fatal(err)
	}
	secret := keyPrefix + "0123456789012345678901234567890123456789012"
	if err := old.Write(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(`INSERT INTO accounts (account_id, name, create_time) VALUES ('acc_1', 'old', 1)`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO api_keys (key_id, account_id, role, name, secret_hash, create_time) VALUES ('key_1', 'acc_1', 'customer', 'ci', ?, 1)`, digest(secret))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	st, err := OpenStore(ctx, path, clockwork.NewRealClock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, until, ok, err := st.lookup(ctx, secret)
	if err != nil || !ok || p.Role != RoleOwner || p.Bundles != nil || !until.IsZero() {
		t.Errorf("old customer key after the upgrade: %+v until %v, %v, %v; want an unlimited owner key", p, until, ok, err)
	}
}
