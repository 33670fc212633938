// Package db opens a service's database, applies its embedded migrations, and runs its writes.
//
// The embedded default is SQLite (mattn/go-sqlite3) in WAL mode with synchronous=FULL, so a
// commit that returned is on disk. Reads go through a pool of read-only connections; writes go
// through one writer connection and a group-commit loop (see Write): a commit with FULL costs one
// fsync (~0.3 ms here), so committing concurrent requests together is what lets a service take
// thousands of paid orders a second without giving up durability.
//
// The scale-out backend is PostgreSQL, through pgx (postgres.go): Open takes a URL (ParseURL) and
// the stores do not otherwise know which one they run on. SQL is written once, with `?`
// placeholders, and rebound for the driver (sqlx.Rebind), using no construct only one dialect
// has; where a migration's SQL must differ, a postgres/ directory holds that dialect's version of
// the file (MigrationsFor). Errors are classified for both in one place (errors.go).
package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
)

// DB is one service's database.
type DB struct {
	dialect Dialect
	read    *sqlx.DB
	write   *sqlx.DB
	w       *groupWriter
	log     *slog.Logger
}

// Dialect is the database's dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// Options configure Open.
type Options struct {
	// Migrations holds the goose migration files (NNNNN_name.sql) at its root; they are applied,
	// in order, before Open returns.
	Migrations fs.FS
	// MaxBatch bounds how many concurrent writes one group commit takes (default 256).
	MaxBatch int
	// MaxConns is the size of the connection pool (PostgreSQL; default DefaultMaxConns).
	MaxConns int
	// Logger receives migration and writer diagnostics; nil discards them.
	Logger *slog.Logger
	// SerialWrites makes every PostgreSQL write transaction take an EXCLUSIVE lock on this table
	// before its first statement, so that write transactions run one at a time, as SQLite's do:
	// for a store whose writes allocate ids from a counter row and must commit in that order (the
	// lifecycle store's event ids, the WatchEvents cursor). Concurrent SERIALIZABLE transactions
	// updating one counter row would otherwise fail each other (40001) faster than retries
	// absorb. The lock comes before the transaction's snapshot, so a writer sees every write
	// committed before it, and plain reads (ACCESS SHARE) are not blocked. Empty: no lock.
	SerialWrites string
}

// defaultMaxBatch is Options.MaxBatch's default.
const defaultMaxBatch = 256

// sqliteDSN is the connection string for path. Every connection gets WAL, synchronous=FULL (the
// driver's build default for WAL is NORMAL, which may lose the last commits on power loss), a
// busy timeout, foreign keys, and BEGIN IMMEDIATE for transactions: a deferred transaction that
// reads and then writes fails at once with SQLITE_BUSY under a concurrent writer, and busy_timeout
// does not help it. Each connection also keeps its last 64 prepared statements: without the
// cache the driver compiles every statement anew on every call, which was ~12% of the lifecycle
// writer's CPU per bundle (BenchmarkCreateBundle).
func sqliteDSN(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_stmt_cache_size", "64")
	if readOnly {
		q.Set("_query_only", "true")
		q.Set("_txlock", "deferred")
	}
	return "file:" + path + "?" + q.Encode()
}

// openSQLite opens a pool whose every connection is set up by onConnect (database/sql may open a
// new connection at any time, so a pragma run once on the pool would not reach it).
func openSQLite(dsn string) *sqlx.DB {
	d := &sqlite3.SQLiteDriver{ConnectHook: onConnect}
	return sqlx.NewDb(sql.OpenDB(connector{dsn: dsn, driver: d}), "sqlite3")
}

// onConnect sets what the DSN cannot. temp_store=MEMORY keeps savepoint journals in memory: the
// group-commit writer runs each request in a SAVEPOINT, and SQLite journals the original of every
// page a savepoint first changes so that it can be rolled back alone. In a temporary file that
// was one 4 KiB pwrite per page, ~20 per bundle, and ~40% of the lifecycle writer's CPU
// (BenchmarkCreateBundle). These journals only serve ROLLBACK TO inside a transaction; the
// transaction's durability is the WAL's and does not change.
func onConnect(c *sqlite3.SQLiteConn) error {
	_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
	return err
}

// connector hands database/sql connections from one driver value (with its ConnectHook) and DSN.
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.driver }

// Open opens the database at url (ParseURL: a SQLite file, created if needed, or a PostgreSQL
// database, which must exist) and applies the migrations. For SQLite it starts the group-commit
// writer, which Close stops.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialect, target, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if dialect == Postgres {
		return openPostgres(ctx, target, opts, log)
	}
	return openSQLiteDB(ctx, target, opts, log)
}

func openSQLiteDB(ctx context.Context, path string, opts Options, log *slog.Logger) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("db: create directory for %s: %w", path, err)
	}
	if err := ownerOnly(path); err != nil {
		return nil, err
	}
	write := openSQLite(sqliteDSN(path, false))
	// One writer connection: SQLite allows one writer at a time anyway, and owning it lets the
	// group-commit loop batch without contending with itself.
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return nil, fmt.Errorf("db: open %s: %w", path, err)
	}
	if opts.Migrations != nil {
		if err := migrate(ctx, write.DB, MigrationsFor(SQLite, opts.Migrations), log); err != nil {
			write.Close()
			return nil, fmt.Errorf("db: migrate %s: %w", path, err)
		}
	}
	read := openSQLite(sqliteDSN(path, true))
	n := max(4, 2*runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatch
	}
	d := &DB{dialect: SQLite, read: read, write: write, log: log}
	d.w = newGroupWriter(write, maxBatch, log, nil)
	return d, nil
}

// ownerOnly makes the database file readable and writable by its owner only (0600): it holds
// sealed keys, hashed API keys and customers' data. A new file is created so before SQLite opens it
// (SQLite gives its -wal and -shm files the database file's permissions); an existing one that
// others could read is tightened.
func ownerOnly(path string) error {
	if path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("db: create %s: %w", path, err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("db: %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return fmt.Errorf("db: make %s private: %w", path, err)
		}
	}
	return nil
}

// migrate applies the embedded goose migrations. goose records what it applied in its own table,
// so starting an up-to-date database is a no-op and an older binary refuses nothing it knows.
func migrate(ctx context.Context, db *sql.DB, migrations fs.FS, log *slog.Logger) error {
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return err
}

// Close stops the writer (after the writes already queued) and closes the connections.
func (d *DB) Close() error {
	d.w.close()
	if d.dialect == Postgres {
		return d.write.Close() // one pool
	}
	return errors.Join(d.read.Close(), d.write.Close())
}

// Get runs a single-row read query on the read pool. It returns sql.ErrNoRows when nothing matches.
func (d *DB) Get(ctx context.Context, dest any, query string, args ...any) error {
	return d.read.GetContext(ctx, dest, d.read.Rebind(query), args...)
}

// Select runs a read query on the read pool and scans every row into dest (a pointer to a slice).
func (d *DB) Select(ctx context.Context, dest any, query string, args ...any) error {
	return d.read.SelectContext(ctx, dest, d.read.Rebind(query), args...)
}

// Write runs fn in a write transaction and returns fn's error, or the commit's. When it returns
// nil the transaction is committed and on disk.
//
// Concurrent Write calls are grouped into one transaction (group commit): each fn runs in its own
// SAVEPOINT, so an fn that fails is rolled back alone and the others commit together. Because fns
// of one group run one after another in a single transaction, each sees the writes of those before
// it, exactly as if they had committed one by one. An fn must therefore be quick and must not wait
// on the network or on another Write (it would wait on itself); read what you need before, write
// in fn, and use tx.AfterCommit for what must happen only once the write is durable.
//
// On PostgreSQL the group's transaction is SERIALIZABLE and is run again when it loses a race
// (postgres.go), so fn may run more than once: it must only read and write through tx.
func (d *DB) Write(ctx context.Context, fn func(tx *Tx) error) error {
	return d.w.do(ctx, fn)
}

// Tx is a write transaction (or, inside a group, one request's part of it). Statements are
// written with `?` placeholders and rebound for the driver.
type Tx struct {
	tx    *sqlx.Tx
	ctx   context.Context
	after []func()
	// dirty: a statement of this request changed rows, may have, or failed (a failed statement
	// aborts a PostgreSQL transaction). A request that fails when dirty cannot simply be left
	// out of its group: the group writer undoes it with a savepoint (groupcommit.go).
	dirty bool
}

// Exec runs a statement.
func (t *Tx) Exec(query string, args ...any) (sql.Result, error) {
	res, err := t.tx.ExecContext(t.ctx, t.tx.Rebind(query), args...)
	if err != nil {
		t.dirty = true
		return res, err
	}
	if !t.dirty && (!isRowWrite(query) || changedRows(res)) {
		t.dirty = true
	}
	return res, nil
}

// Get reads one row (seeing this transaction's own writes). sql.ErrNoRows when nothing matches.
func (t *Tx) Get(dest any, query string, args ...any) error {
	err := t.tx.GetContext(t.ctx, dest, t.tx.Rebind(query), args...)
	if err != nil && !errors.Is(err, sql.ErrNoRows) || err == nil && !isSelect(query) {
		t.dirty = true
	}
	return err
}

// Select reads rows into dest (a pointer to a slice), seeing this transaction's own writes.
func (t *Tx) Select(dest any, query string, args ...any) error {
	err := t.tx.SelectContext(t.ctx, dest, t.tx.Rebind(query), args...)
	if err != nil || !isSelect(query) {
		t.dirty = true
	}
	return err
}

// isSelect tells a query that only reads (SELECT …) from one that may write (UPDATE … RETURNING).
func isSelect(query string) bool { return hasKeyword(query, "SELECT") }

// isRowWrite tells an INSERT, UPDATE or DELETE, whose rows affected say whether it changed
// anything, from other statements (DDL, say), which count as changes.
func isRowWrite(query string) bool {
	return hasKeyword(query, "INSERT") || hasKeyword(query, "UPDATE") || hasKeyword(query, "DELETE")
}

func hasKeyword(query, keyword string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= len(keyword) && strings.EqualFold(q[:len(keyword)], keyword)
}

// changedRows is false only when res says the statement affected no row.
func changedRows(res sql.Result) bool {
	n, err := res.RowsAffected()
	return err != nil || n > 0
}

// NamedExec runs a statement with :name parameters bound from arg's db tags. arg is a struct, or
// a slice of structs for `INSERT … VALUES (:a, :b, …)`, which then inserts one row per element
// (in statements of at most 64 rows). named.go compiles each query once.
func (t *Tx) NamedExec(query string, arg any) (sql.Result, error) { return t.namedExec(query, arg) }

// AfterCommit registers f to run once the transaction is committed (and never if it is not):
// waking a relay, notifying event watchers. f runs on the writer's goroutine and must not block.
func (t *Tx) AfterCommit(f func()) { t.after = append(t.after, f) }

// Placeholders is n comma-separated `?`, for an `IN (...)` list of n arguments.
func Placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// Rows is n comma-separated tuples of cols `?` each, for a multi-row `VALUES` list.
func Rows(n, cols int) string {
	return strings.TrimSuffix(strings.Repeat("("+Placeholders(cols)+"), ", n), ", ")
}

// ExpectOne returns ErrConflict unless res affected exactly one row: the check after every
// compare-and-set UPDATE (`... WHERE id = ? AND state = ?`).
func ExpectOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return ErrConflict
	}
	return nil
}

// ErrConflict is returned by ExpectOne when a compare-and-set found the row changed (or gone).
var ErrConflict = errors.New("db: row changed concurrently")

// MigrationsIn returns the "migrations" directory of an embedded file system, the way every store
// embeds its migrations (`//go:embed migrations/*.sql`). The directory is part of the binary, so
// its absence is a build mistake and panics.
func MigrationsIn(files fs.FS) fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}
