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
	"strings"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// Role is what a key may do.
type Role string

// Roles. An account's customer keys act on that account's resources only; support keys belong to
// engineers, who act on support cases across accounts; the service role is the order service's own
// credential towards the lifecycle service.
const (
	RoleCustomer Role = "customer"
	RoleSupport  Role = "support"
	RoleService  Role = "service"
)

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleCustomer, RoleSupport, RoleService:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want customer, support or service)", s)
}

// Principal is the verified caller of a request.
type Principal struct {
	AccountID string
	KeyID     string
	Role      Role
	// Name is the key's name; for support keys, the engineer's name cases are assigned to.
	Name string
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
		_, err := tx.NamedExec(`INSERT INTO accounts (account_id, name, create_time) VALUES (:account_id, :name, :create_time)`, a)
		return err
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
}

// CreateKey makes a new key for an account and returns its secret, which is shown this once:
// only its digest is stored.
func (s *Store) CreateKey(ctx context.Context, accountID string, role Role, name string) (Key, string, error) {
	if _, err := ParseRole(string(role)); err != nil {
		return Key{}, "", err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return Key{}, "", err
	}
	secret := keyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	now := s.clk.Now()
	k := Key{ID: ids.New(ids.APIKey, now), AccountID: accountID, Role: role, Name: name, CreateTime: db.Micros(now)}
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(&n, `SELECT COUNT(*) FROM accounts WHERE account_id = ?`, accountID); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("account %q does not exist", accountID)
		}
		_, err := tx.Exec(`INSERT INTO api_keys (key_id, account_id, role, name, secret_hash, create_time) VALUES (?, ?, ?, ?, ?, ?)`,
			k.ID, k.AccountID, string(k.Role), k.Name, digest(secret), k.CreateTime)
		return err
	})
	if err != nil {
		return Key{}, "", err
	}
	return k, secret, nil
}

// RevokeKey revokes a key. Both services stop accepting it within their cache TTL.
func (s *Store) RevokeKey(ctx context.Context, keyID string) error {
	now := db.Micros(s.clk.Now())
	return s.db.Write(ctx, func(tx *db.Tx) error {
		err := db.ExpectOne(tx.Exec(`UPDATE api_keys SET revoke_time = ? WHERE key_id = ? AND revoke_time IS NULL`, now, keyID))
		if errors.Is(err, db.ErrConflict) {
			return fmt.Errorf("key %q does not exist or is already revoked", keyID)
		}
		return err
	})
}

// ListKeys returns an account's keys, oldest first.
func (s *Store) ListKeys(ctx context.Context, accountID string) ([]Key, error) {
	var keys []Key
	err := s.db.Select(ctx, &keys, `SELECT key_id, account_id, role, name, create_time, revoke_time FROM api_keys WHERE account_id = ? ORDER BY key_id`, accountID)
	return keys, err
}

// lookup finds the unrevoked key with the given secret.
func (s *Store) lookup(ctx context.Context, secret string) (Principal, bool, error) {
	return s.lookupDigest(ctx, digest(secret))
}

// lookupDigest finds the unrevoked key whose secret has digest d. found is false only for a
// definite answer (no such key, or revoked); a fault of the database is an error. Key expiry, when
// it comes, belongs here as one more "not found": Verify and the re-verification of open streams
// (streams.go) both ask here, so an expired key is refused at once and its streams end.
func (s *Store) lookupDigest(ctx context.Context, d string) (p Principal, found bool, err error) {
	var k Key
	err = s.db.Get(ctx, &k, `SELECT key_id, account_id, role, name, create_time, revoke_time FROM api_keys WHERE secret_hash = ?`, d)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, false, nil
	}
	if err != nil {
		return Principal{}, false, err
	}
	if k.RevokeTime.Valid {
		return Principal{}, false, nil
	}
	return Principal{AccountID: k.AccountID, KeyID: k.ID, Role: k.Role, Name: k.Name}, true, nil
}

func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// wellFormed rejects obviously wrong keys before touching the database.
func wellFormed(secret string) bool {
	return strings.HasPrefix(secret, keyPrefix) && len(secret) == len(keyPrefix)+43
}
