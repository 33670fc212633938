package db_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url     string
		dialect db.Dialect
		target  string
		err     bool
	}{
		{"var/order.db", db.SQLite, "var/order.db", false},
		{"/abs/order.db", db.SQLite, "/abs/order.db", false},
		{"sqlite:var/order.db", db.SQLite, "var/order.db", false},
		{"sqlite:///abs/order.db", db.SQLite, "/abs/order.db", false},
		{"postgres://u:p@h:5432/order?sslmode=disable", db.Postgres, "postgres://u:p@h:5432/order?sslmode=disable", false},
		{"postgresql://h/order", db.Postgres, "postgresql://h/order", false},
		{"mysql://h/order", "", "", true},
		{"sqlite:", "", "", true},
		{"", "", "", true},
	} {
		d, target, err := db.ParseURL(tc.url)
		if (err != nil) != tc.err || d != tc.dialect || target != tc.target {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q, error %v", tc.url, d, target, err, tc.dialect, tc.target, tc.err)
		}
	}
	if got := db.Redacted("postgres://order:s3cret@db:5432/order"); got != "postgres://order:xxxxx@db:5432/order" {
		t.Errorf("Redacted = %q", got)
	}
}

var migrations = fstest.MapFS{
	"00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB);
CREATE TABLE counter (n INTEGER NOT NULL);
INSERT INTO counter (n) VALUES (0);
-- +goose Down
DROP TABLE counter;
DROP TABLE items;
`)},
	// PostgreSQL has no BLOB: its own version of the file.
	"postgres/00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BYTEA);
CREATE TABLE counter (n INTEGER NOT NULL);
INSERT INTO counter (n) VALUES (0);
-- +goose Down
DROP TABLE counter;
DROP TABLE items;
`)},
}

// TestDialects: the same statements, the same results, on both dialects: migrations (with a
// per-dialect file), read-modify-write transactions racing each other, unique violations.
func TestDialects(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		ctx := context.Background()
		url := dbtest.URL(t, d, "dialects")
		// Two opens of one database: the migrations run once. On PostgreSQL at the same moment, as
		// replicas starting together do (the advisory lock); a SQLite file has one service.
		var wg sync.WaitGroup
		dbs := make([]*db.DB, 2)
		errs := make([]error, 2)
		for i := range dbs {
			wg.Add(1)
			open := func() {
				defer wg.Done()
				dbs[i], errs[i] = db.Open(ctx, url, db.Options{Migrations: migrations})
			}
			if d == db.Postgres {
				go open()
			} else {
				open()
			}
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Open %d: %v", i, err)
			}
			defer dbs[i].Close()
		}
		if dbs[0].Dialect() != d {
			t.Errorf("Dialect() = %s, want %s", dbs[0].Dialect(), d)
		}

		// 40 writers, each reading the counter and writing it back plus one: every increment
		// counts (SQLite runs them one at a time; PostgreSQL serializes or retries them).
		const writers = 40
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs := dbs[i%2].Write(ctx, func(tx *db.Tx) error {
					var n int
					if err := tx.Get(&n, `SELECT n FROM counter`); err != nil {
						return err
					}
					_, err := tx.Exec(`UPDATE counter SET n = ?`, n+1)
					return err
				})
				if errs != nil {
					t.Errorf("increment: %v", errs)
				}
			}()
		}
		wg.Wait()
		var n int
		if err := dbs[0].Get(ctx, &n, `SELECT n FROM counter`); err != nil || n != writers {
			t.Errorf("counter = %d, %v; want %d (and one counter row: migrated once)", n, err, writers)
		}

		insert := func(id int, name string) error {
			return dbs[0].Write(ctx, func(tx *db.Tx) error {
				_, err := tx.Exec(`INSERT INTO items (id, name, data) VALUES (?, ?, ?)`, id, name, []byte{0, 1, 2})
				return err
			})
		}
		if err := insert(1, "a"); err != nil {
			t.Fatal(err)
		}
		for _, dup := range []struct {
			id   int
			name string
		}{{1, "b"}, {2, "a"}} {
			if err := insert(dup.id, dup.name); !db.IsUniqueViolation(err) || db.IsRetryable(err) || db.IsUnavailable(err) {
				t.Errorf("duplicate insert %v: %v; want a unique violation, nothing else", dup, err)
			}
		}
		var data []byte
		if err := dbs[1].Get(ctx, &data, `SELECT data FROM items WHERE id = ?`, 1); err != nil || len(data) != 3 {
			t.Errorf("blob read back = %v, %v", data, err)
		}
	})
}

// TestUnavailable: a database that cannot be reached is Unavailable, not a verdict.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = db.Open(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2", db.Options{})
	if err == nil || !db.IsUnavailable(err) || db.IsUniqueViolation(err) {
		t.Errorf("Open of a closed port: %v; want an error IsUnavailable", err)
	}
	for _, e := range []error{context.Canceled, errors.New("syntax error")} {
		if db.IsUnavailable(e) {
			t.Errorf("IsUnavailable(%v) = true", e)
		}
	}
}

// Many writers allocating from one counter row: with SerialWrites each gets the next value, in
// commit order, and none fails; on SQLite the single writer does the same without it.
func TestSerialWrites(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, d db.Dialect) {
		database := dbtest.Open(t, d, "serial", db.Options{Migrations: migrations, SerialWrites: "counter"})
		const writers, each = 16, 20
		var mu sync.Mutex
		var got []int
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				for range each {
					var n int
					err := database.Write(context.Background(), func(tx *db.Tx) error {
						return tx.Get(&n, `UPDATE counter SET n = n + 1 RETURNING n`)
					})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					got = append(got, n)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		seen := map[int]bool{}
		for _, n := range got {
			if seen[n] || n < 1 || n > writers*each {
				t.Fatalf("counter value %d handed out twice or out of range", n)
			}
			seen[n] = true
		}
		if len(seen) != writers*each {
			t.Errorf("%d values handed out, want %d", len(seen), writers*each)
		}
	})
}

// On PostgreSQL, as on SQLite, writes queued while the writer is busy commit as one group: one
// transaction (one txid), each write seeing those before it. A group in which a write loses a race
// (a serialization failure, here returned by the write itself the first time it runs) is run
// again whole: every write commits once, and the writes before the one that failed ran twice.
func TestPostgresGroupCommit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		failing int // the write that fails its first run with a serialization failure; -1: none
	}{
		{"queued writes share a transaction", -1},
		{"a lost race runs the group again", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			database := dbtest.Open(t, db.Postgres, "group", db.Options{Migrations: migrations, SerialWrites: "counter"})
			// A write holds the writer until the others are queued behind it.
			started, unblock, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
			go func() {
				held <- database.Write(context.Background(), func(*db.Tx) error { close(started); <-unblock; return nil })
			}()
			<-started
			const n = 6
			txids := make([]int64, n)
			seen := make([]int, n)
			runs := make([]int, n)
			results := make([]<-chan error, n)
			for i := range n {
				results[i] = db.Enqueue(context.Background(), database, func(tx *db.Tx) error {
					runs[i]++
					if err := tx.Get(&txids[i], `SELECT txid_current()`); err != nil {
						return err
					}
					if err := tx.Get(&seen[i], `SELECT count(*) FROM items`); err != nil {
						return err
					}
					if i == tc.failing && runs[i] == 1 {
						return &pgconn.PgError{Code: "40001", Message: "could not serialize access (test)"}
					}
					_, err := tx.Exec(`INSERT INTO items (id, name) VALUES (?, ?)`, i, fmt.Sprint("item", i))
					return err
				})
			}
			close(unblock)
			if err := <-held; err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := <-results[i]; err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			for i := range n {
				if txids[i] != txids[0] {
					t.Errorf("write %d committed in transaction %d, write 0 in %d; want one group", i, txids[i], txids[0])
				}
				if seen[i] != i {
					t.Errorf("write %d saw %d items, want the %d written before it in the group", i, seen[i], i)
				}
				want := 1
				if i <= tc.failing {
					want = 2
				}
				if runs[i] != want {
					t.Errorf("write %d ran %d times, want %d", i, runs[i], want)
				}
			}
			var count int
			if err := database.Get(context.Background(), &count, `SELECT count(*) FROM items`); err != nil {
				t.Fatal(err)
			}
			if count != n {
				t.Errorf("%d items committed, want %d", count, n)
			}
		})
	}
}
