// Package dbtest gives each test a database of its own on every dialect the services run on, so
// the stores' tests are one table over the dialects and run in parallel, and after other runs, on
// one PostgreSQL server.
package dbtest

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certhosting/certhosting/pkg/db"
)

// DefaultAdminURL is the PostgreSQL server the tests create their databases on, unless
// CERTHOSTING_TEST_POSTGRES names another: the local server with trust authentication, as on the
// development and CI machines.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Dialects are the dialects the stores run on, for table tests.
var Dialects = []db.Dialect{db.SQLite, db.Postgres}

// Each runs f once per dialect, as parallel subtests named after the dialect.
func Each(t *testing.T, f func(t *testing.T, d db.Dialect)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

// AdminURL is the PostgreSQL server's administrative URL.
func AdminURL() string {
	if u := os.Getenv("CERTHOSTING_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// URL returns a database URL of dialect d that no other test uses: a file in a directory of the
// test's own for SQLite (name is its file name), a database t_<name>_<random> created on the
// PostgreSQL server and dropped when the test ends. When the server cannot be reached the test is
// skipped, or fails under CI (CI set), where PostgreSQL is part of the machine.
func URL(t testing.TB, d db.Dialect, name string) string {
	t.Helper()
	if d == db.SQLite {
		return filepath.Join(t.TempDir(), name+".db")
	}
	admin := AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s: %v (CI needs it: it runs on the machine)", db.Redacted(admin), err)
		}
		t.Skipf("PostgreSQL at %s cannot be reached (%v); set CERTHOSTING_TEST_POSTGRES to test on PostgreSQL", db.Redacted(admin), err)
	}
	defer conn.Close(ctx)
	dbName := "t_" + sanitize(name) + "_" + strings.ToLower(rand.Text()[:12])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		t.Fatalf("CREATE DATABASE %s: %v", dbName, err)
	}
	t.Cleanup(func() { Drop(t, dbName) })
	return replaceDatabase(admin, dbName)
}

// Drop drops a test's database, closing whatever connections are left on it.
func Drop(t testing.TB, dbName string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Errorf("dropping %s: %v", dbName, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)"); err != nil {
		t.Errorf("DROP DATABASE %s: %v", dbName, err)
	}
}

// replaceDatabase is url with its path (the database) set to name.
func replaceDatabase(url, name string) string {
	head, query, _ := strings.Cut(url, "?")
	if i := strings.LastIndex(head, "/"); i > len("postgres://") {
		head = head[:i]
	}
	out := head + "/" + name
	if query != "" {
		out += "?" + query
	}
	return out
}

// sanitize keeps a name fit for an unquoted PostgreSQL identifier.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	s := b.String()
	if len(s) > 30 {
		s = s[:30]
	}
	return s
}

// Open opens a fresh database of dialect d with migrations, closed when the test ends.
func Open(t testing.TB, d db.Dialect, name string, opts db.Options) *db.DB {
	t.Helper()
	database, err := db.Open(context.Background(), URL(t, d, name), opts)
	if err != nil {
		t.Fatalf("open %s database %s: %v", d, name, err)
	}
	t.Cleanup(func() { database.Close() })
	return database
}

// FromEnv is the dialect the service-level tests run on: CERTHOSTING_TEST_DB ("sqlite", the
// default, or "postgres"). `make test` runs the services' tests once on each.
func FromEnv(t testing.TB) db.Dialect {
	switch v := os.Getenv("CERTHOSTING_TEST_DB"); v {
	case "", string(db.SQLite):
		return db.SQLite
	case string(db.Postgres):
		return db.Postgres
	default:
		t.Fatalf("CERTHOSTING_TEST_DB=%q: want sqlite or postgres", v)
		return ""
	}
}

var reopen sync.Map // dir + name -> the URL made for it

// URLIn is URL for a database a test may open again: the same dir and name give the same URL.
// For SQLite it is the file name in dir.
func URLIn(t testing.TB, d db.Dialect, dir, name string) string {
	t.Helper()
	if d == db.SQLite {
		return filepath.Join(dir, name)
	}
	key := dir + "\x00" + name
	if u, ok := reopen.Load(key); ok {
		return u.(string)
	}
	u := URL(t, d, strings.TrimSuffix(name, ".db"))
	reopen.Store(key, u)
	return u
}
