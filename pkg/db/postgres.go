package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// PostgreSQL, the scale-out backend: several replicas of a service share one database.
//
// What differs from SQLite, and why:
//   - Writes are group-committed as on SQLite (groupcommit.go): one goroutine per process runs
//     the writes queued meanwhile in one transaction, each in a savepoint, on one connection of
//     the pool at a time. With the SerialWrites lock every write transaction of every replica
//     runs alone anyway, so a commit per write was a turn of the lock and a WAL flush per write.
//   - Every write transaction is SERIALIZABLE and is run again, whole group (up to writeAttempts
//     times, with a random pause doubling from 2 ms to 100 ms), when the server reports a
//     serialization failure or deadlock. SQLite runs
//     writes one at a time, and the stores' read-modify-write code (read a row, decide, save it) is
//     written for that; SERIALIZABLE gives the same result with concurrent transactions, whichever
//     replica or goroutine runs them. A function passed to Write may therefore run more than once:
//     it must only read and write through its Tx (as every store's does) and set its results
//     afresh each time.
//   - Migrations run under a session-level advisory lock (goose's PostgreSQL session locker), so
//     replicas starting together migrate once.
//   - Where the migration SQL differs, a store's migrations hold a postgres/ directory whose files
//     replace those of the same name (MigrationsFor).

// writeAttempts bounds how often a write that keeps losing races is run.
const writeAttempts = 16

// DefaultMaxConns is the default size of a PostgreSQL connection pool (Options.MaxConns): a
// service's own database. Every replica holds its pools open, and PostgreSQL's default
// max_connections is 100, so the sizes are small: 3 lifecycle replicas (8 + 4 + 4) and 2 order
// replicas (8 + 4) hold 64.
const DefaultMaxConns = 8

// SmallPoolConns is the pool size of a service's secondary databases (identity, a CA's own), which
// see a few queries per call at most.
const SmallPoolConns = 4

func openPostgres(ctx context.Context, dsn string, opts Options, log *slog.Logger) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("db: %s: %w", Redacted(dsn), err)
	}
	conn := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	conn.SetMaxOpenConns(maxConns)
	conn.SetMaxIdleConns(maxConns)
	conn.SetConnMaxIdleTime(5 * time.Minute)
	if err := conn.PingContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("db: connect to %s: %w", Redacted(dsn), err)
	}
	if opts.Migrations != nil {
		if err := migratePostgres(ctx, conn.DB, opts.Migrations, log); err != nil {
			conn.Close()
			return nil, fmt.Errorf("db: migrate %s: %w", Redacted(dsn), err)
		}
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = defaultMaxBatch
	}
	d := &DB{dialect: Postgres, read: conn, write: conn, log: log}
	d.w = newGroupWriter(conn, maxBatch, log, &pgGroup{lock: opts.SerialWrites})
	return d, nil
}

func migratePostgres(ctx context.Context, db *sql.DB, migrations fs.FS, log *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, MigrationsFor(Postgres, migrations), goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "path", r.Source.Path, "duration", r.Duration)
	}
	return err
}

// writeTimeout bounds one PostgreSQL write transaction.
const writeTimeout = 30 * time.Second

// MigrationsFor is a store's migrations for a dialect: the SQL files at the root of migrations,
// each replaced, for PostgreSQL, by the file of the same name under postgres/ if there is one.
func MigrationsFor(d Dialect, migrations fs.FS) fs.FS {
	if d != Postgres {
		return rootOnly{migrations}
	}
	return overlay{base: migrations, over: "postgres"}
}

// rootOnly is a migrations directory without its subdirectories.
type rootOnly struct{ fs.FS }

func (r rootOnly) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(r.FS, name)
	var files []fs.DirEntry
	for _, e := range entries {
		if !e.IsDir() {
			files = append(files, e)
		}
	}
	return files, err
}

// overlay is base's root files, each replaced by over/<name> when that exists.
type overlay struct {
	base fs.FS
	over string
}

func (o overlay) Open(name string) (fs.File, error) {
	if name != "." {
		if f, err := o.base.Open(path.Join(o.over, name)); err == nil {
			return f, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return o.base.Open(name)
}

func (o overlay) ReadDir(name string) ([]fs.DirEntry, error) { return rootOnly{o.base}.ReadDir(name) }
