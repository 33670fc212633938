// Package auth is the identity of both services: accounts (tenants), their API keys, and the gRPC
// interceptors that turn an `authorization: Bearer <key>` header into the caller's Principal.
//
// Identity lives in its own small database (var/identity.db by default), separate from the order
// and lifecycle databases. Both services read it and the admin commands write it; neither service
// reads the other's tables. Each service caches a verified key for a few seconds (Verifier), so a
// request costs a map lookup and a revoked key stops working everywhere within that TTL. Keeping
// identity a store of its own, rather than a table of one service, means either service keeps
// authenticating while the other is down (the order service must take payments while the
// lifecycle service is restarting). In a larger deployment it becomes a service behind Verifier.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// Role is what a key may do.
type Role string

// Roles. An account's own keys have one of three roles (least privilege: give a deploy script a
// deployer key for its bundles, a dashboard a reader key):
//   - owner: everything on the account (buy, pay, apply, export, manage keys, read the audit log);
//   - deployer: read, and export private keys, of the named bundles only;
//   - reader: read only (the whole account, or named bundles).
//
// Support keys belong to engineers, who act on support cases across accounts; the service role is
// the order service's own credential towards the lifecycle service. The authorization of every
// RPC is its service's Policy table.
const (
	RoleOwner    Role = "owner"
	RoleDeployer Role = "deployer"
	RoleReader   Role = "reader"
	RoleSupport  Role = "support"
	RoleService  Role = "service"
)

// ParseRole checks a role name. "customer", the one customer role before keys had least
// privilege, is accepted as owner (what such keys became).
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleOwner, RoleDeployer, RoleReader, RoleSupport, RoleService:
		return r, nil
	case "customer":
		return RoleOwner, nil
	}
	return "", fmt.Errorf("unknown role %q (want owner, deployer, reader, support or service)", s)
}

// Principal is the verified caller of a request.
type Principal struct {
	AccountID string
	KeyID     string
	Role      Role
	// Name is the key's name; for support keys, the engineer's name cases are assigned to.
	Name string
	// Bundles, when not nil, are the only bundles the key may see: anything else of the account is
	// NotFound to it, as another account's would be.
	Bundles []string
}

// Sees says whether the key may see bundle bundleID (of its account).
func (p Principal) Sees(bundleID string) bool {
	return p.Bundles == nil || slices.Contains(p.Bundles, bundleID)
}

// keyPrefix starts every API key, so a leaked key is recognisable by secret scanners.
const keyPrefix = "chk_"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the identity database's schema migrations.
func Migrations() fs.FS { return db.MigrationsIn(migrationFiles) }

// Store reads and writes accounts and keys.
type Store struct {
	db  *db.DB
	clk clockwork.Clock
}

// OpenStore opens the identity database at path.
func OpenStore(ctx context.Context, path string, clk clockwork.Clock, log *slog.Logger) (*Store, error) {
	d, err := db.Open(ctx, path, db.Options{Migrations: Migrations(), Logger: log, MaxConns: db.SmallPoolConns})
	if err != nil {
		return nil, err
	}
	return &Store{db: d, clk: clk}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Account is a tenant.
type Account struct {
	ID         string `db:"account_id"`
	Name       string `db:"name"`
	CreateTime int64  `db:"create_time"`
}

// CreateAccount adds an account.
func (s *Store) CreateAccount(ctx context.Context, name string) (Account, error) {
	if strings.TrimSpace(name) == "" {
		return Account{}, errors.New("account name is required")
	}
	now := s.clk.Now()
	a := Account{ID: ids.New(ids.Account, now), Name: name, CreateTime: db.Micros(now)}
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		if _, err := tx.NamedExec(`INSERT INTO accounts (account_id, name, create_time) VALUES (:account_id, :name, :create_time)`, a); err != nil {
			return err
		}
		return InsertAudit(tx, NewAuditEvent(now, a.ID, AuditAccountCreated, Admin, a.ID, fmt.Sprintf("name=%q", name)))
	})
	return a, err
}

// FindAccount returns the account with the given name, or ok false.
func (s *Store) FindAccount(ctx context.Context, name string) (a Account, ok bool, err error) {
	err = s.db.Get(ctx, &a, `SELECT account_id, name, create_time FROM accounts WHERE name = ? ORDER BY create_time LIMIT 1`, name)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, false, nil
	}
	return a, err == nil, err
}

// Key describes an API key (never its secret).
type Key struct {
	ID         string        `db:"key_id"`
	AccountID  string        `db:"account_id"`
	Role       Role          `db:"role"`
	Name       string        `db:"name"`
	CreateTime int64         `db:"create_time"`
	RevokeTime sql.NullInt64 `db:"revoke_time"`
	ExpireTime sql.NullInt64 `db:"expire_time"`
	// BundleIDs are the bundles a limited key may see, comma-separated; empty: the whole account.
	BundleIDs string `db:"bundle_ids"`
}

const keyColumns = `key_id, account_id, role, name, create_time, revoke_time, expire_time, bundle_ids`

// Bundles returns the bundles a limited key may see, or nil for the whole account.
func (k Key) Bundles() []string {
	if k.BundleIDs == "" {
		return nil
	}
	return strings.Split(k.BundleIDs, ",")
}

// KeySpec is what a new key is.
type KeySpec struct {
	AccountID string
	Role      Role
	Name      string
	// Bundles limits the key to these bundles; nil: the whole account.
	Bundles []string
	// Expire (micros) is when the key stops working; 0: never.
	Expire int64
}

// CreateKey makes a new key for an account and returns its secret, which is shown this once:
// only its digest is stored. The admin commands' way; the audit log records the admin as actor.
func (s *Store) CreateKey(ctx context.Context, accountID string, role Role, name string) (Key, string, error) {
	return s.NewKey(ctx, KeySpec{AccountID: accountID, Role: role, Name: name}, Admin)
}

// NewKey makes a key as spec says, by actor, and records it in the account's audit log in the
// same transaction. The caller has checked the spec's fields (CreateApiKey answers
// InvalidArgument); NewKey refuses an unknown role or account.
func (s *Store) NewKey(ctx context.Context, spec KeySpec, actor Principal) (Key, string, error) {
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return Key{}, "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, "", err
	}
	secret := keyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.clk.Now()
	k := Key{ID: ids.New(ids.APIKey, now), AccountID: spec.AccountID, Role: spec.Role, Name: spec.Name, CreateTime: db.Micros(now),
		BundleIDs: strings.Join(spec.Bundles, ",")}
	if spec.Expire != 0 {
		k.ExpireTime = sql.NullInt64{Int64: spec.Expire, Valid: true}
	}
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(&n, `SELECT COUNT(*) FROM accounts WHERE account_id = ?`, spec.AccountID); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("account %q does not exist", spec.AccountID)
		}
		if _, err := tx.Exec(`INSERT INTO api_keys (key_id, account_id, role, name, secret_hash, create_time, expire_time, bundle_ids)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.AccountID, string(k.Role), k.Name, digest(secret), k.CreateTime, k.ExpireTime, k.BundleIDs); err != nil {
			return err
		}
		return InsertAudit(tx, NewAuditEvent(now, k.AccountID, AuditKeyCreated, actor, k.ID, keyDetail(k)))
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// keyDetail describes a key for the audit log: role, name, limits (never the secret).
func keyDetail(k Key) string {
	d := fmt.Sprintf("role=%s name=%q", k.Role, k.Name)
	if k.BundleIDs != "" {
		d += " bundles=" + k.BundleIDs
	}
	if k.ExpireTime.Valid {
		d += " expires=" + db.FromMicros(k.ExpireTime.Int64).UTC().Format(time.RFC3339)
	}
	return d
}

// ErrKeyNotFound is RevokeAccountKey's answer for a key that is not the account's.
var ErrKeyNotFound = errors.New("no such key")

// RevokeKey revokes a key (the admin command). Both services stop accepting it within their cache
// TTL, open streams included.
func (s *Store) RevokeKey(ctx context.Context, keyID string) error {
	_, changed, err := s.revoke(ctx, "", keyID, Admin)
	if errors.Is(err, ErrKeyNotFound) || (err == nil && !changed) {
		return fmt.Errorf("key %q does not exist or is already revoked", keyID)
	}
	return err
}

// RevokeAccountKey revokes key keyID of account accountID (empty: any account), by actor, and
// records it in the audit log. Revoking a revoked key changes nothing and returns it as it is, so
// a retried call succeeds; ErrKeyNotFound if the account has no such key.
func (s *Store) RevokeAccountKey(ctx context.Context, accountID, keyID string, actor Principal) (Key, error) {
	k, _, err := s.revoke(ctx, accountID, keyID, actor)
	return k, err
}

func (s *Store) revoke(ctx context.Context, accountID, keyID string, actor Principal) (k Key, changed bool, err error) {
	now := s.clk.Now()
	err = s.db.Write(ctx, func(tx *db.Tx) error {
		err := tx.Get(&k, `SELECT `+keyColumns+` FROM api_keys WHERE key_id = ?`, keyID)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && accountID != "" && k.AccountID != accountID) {
			return ErrKeyNotFound
		}
		if err != nil || k.RevokeTime.Valid {
			return err
		}
		changed = true
		k.RevokeTime = sql.NullInt64{Int64: db.Micros(now), Valid: true}
		if err := db.ExpectOne(tx.Exec(`UPDATE api_keys SET revoke_time = ? WHERE key_id = ? AND revoke_time IS NULL`, k.RevokeTime, keyID)); err != nil {
			return err
		}
		return InsertAudit(tx, NewAuditEvent(now, k.AccountID, AuditKeyRevoked, actor, k.ID, keyDetail(k)))
	})
	return k, changed, err
}

// ListKeys returns an account's keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, accountID string) ([]Key, error) {
	var keys []Key
	err := s.db.Select(ctx, &keys, `SELECT `+keyColumns+` FROM api_keys WHERE account_id = ? ORDER BY key_id`, accountID)
	return keys, err
}

// ListKeysPage returns up to limit of an account's keys, newest first, before key id `before`.
func (s *Store) ListKeysPage(ctx context.Context, accountID, before string, limit int) ([]Key, error) {
	q := `SELECT ` + keyColumns + ` FROM api_keys WHERE account_id = ?`
	args := []any{accountID}
	if before != "" {
		q += ` AND key_id < ?`
		args = append(args, before)
	}
	var keys []Key
	err := s.db.Select(ctx, &keys, q+` ORDER BY key_id DESC LIMIT ?`, append(args, limit)...)
	return keys, err
}

// lookup finds the key with the given secret if it still works (lookupDigest).
func (s *Store) lookup(ctx context.Context, secret string) (Principal, time.Time, bool, error) {
	return s.lookupDigest(ctx, digest(secret))
}

// lookupDigest finds the key whose secret has digest d if it still works: not revoked, not
// expired; until is when it expires (zero: never). found is false only for a definite answer (no
// such key, revoked, expired); a fault of the database is an error. Verify and the
// re-verification of open streams (streams.go) both ask here, so an expired key is refused at once
// and its streams end.
func (s *Store) lookupDigest(ctx context.Context, d string) (p Principal, until time.Time, found bool, err error) {
	var k Key
	err = s.db.Get(ctx, &k, `SELECT `+keyColumns+` FROM api_keys WHERE secret_hash = ?`, d)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, time.Time{}, false, nil
	}
	if err != nil {
		return Principal{}, time.Time{}, false, err
	}
	if k.RevokeTime.Valid {
		return Principal{}, time.Time{}, false, nil
	}
	if k.ExpireTime.Valid {
		until = db.FromMicros(k.ExpireTime.Int64)
		if !s.clk.Now().Before(until) {
			return Principal{}, time.Time{}, false, nil
		}
	}
	return Principal{AccountID: k.AccountID, KeyID: k.ID, Role: k.Role, Name: k.Name, Bundles: k.Bundles()}, until, true, nil
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// wellFormed rejects obviously wrong keys before touching the database.
func wellFormed(secret string) bool {
	return strings.HasPrefix(secret, keyPrefix) && len(secret) == len(keyPrefix)+43
}
