package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// testMigrations is a small schema of its own: a table to write to, a unique column, and a
// deferred foreign key (the one way to make a COMMIT itself fail). The first migration also
// inserts a row, so a migration that ran twice would show.
var testMigrations = fstest.MapFS{
	"00001_items.sql": {Data: []byte(`-- +goose Up
CREATE TABLE items (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE seeded (n INTEGER NOT NULL);
INSERT INTO seeded (n) VALUES (1);
-- +goose Down
DROP TABLE seeded;
DROP TABLE items;
`)},
	"00002_children.sql": {Data: []byte(`-- +goose Up
CREATE TABLE children (
    id      INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items (id) DEFERRABLE INITIALLY DEFERRED
);
-- +goose Down
DROP TABLE children;
`)},
}

// openAt opens the test schema at path and closes it when the test ends.
func openAt(t *testing.T, path string) *DB {
	t.Helper()
	d, err := Open(context.Background(), path, Options{Migrations: testMigrations})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func open(t *testing.T) *DB {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "test.db"))
}

// insert is a write that adds one item.
func insert(id int, name string) func(*Tx) error {
	return func(tx *Tx) error {
		_, err := tx.Exec(`INSERT INTO items (id, name) VALUES (?, ?)`, id, name)
		return err
	}
}

// itemIDs lists the committed items, read through the read pool.
func itemIDs(t *testing.T, d *DB) []int {
	t.Helper()
	var got []int
	if err := d.Select(context.Background(), &got, `SELECT id FROM items ORDER BY id`); err != nil {
		t.Fatalf("select items: %v", err)
	}
	return got
}

func wantItems(t *testing.T, d *DB, want ...int) {
	t.Helper()
	got := itemIDs(t, d)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("committed items = %v, want %v", got, want)
	}
}

// holdWriter occupies the writer with a write that waits until release is called, so the test can
// queue writes behind it and know they will be taken as one group. release waits for the holding
// write to finish.
func holdWriter(t *testing.T, d *DB) (release func()) {
	t.Helper()
	started, unblock, finished := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		finished <- d.Write(context.Background(), func(*Tx) error {
			close(started)
			<-unblock
			return nil
		})
	}()
	<-started
	return func() {
		close(unblock)
		if err := <-finished; err != nil {
			t.Errorf("holding write: %v", err)
		}
	}
}

// enqueue queues a write exactly as Write does but returns at once with the channel its result
// will arrive on, so a test knows the write is queued before it moves on.
func enqueue(ctx context.Context, d *DB, fn func(*Tx) error) <-chan error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	d.w.reqs <- r
	return r.done
}

func TestWriteCommits(t *testing.T) {
	t.Parallel()
	d := open(t)
	if err := d.Write(context.Background(), insert(1, "one")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	wantItems(t, d, 1)
}

// Many concurrent writers all commit, and the group commit runs their fns one after another: each
// fn sees every write before it, as if the writes had committed one by one.
func TestConcurrentWritesAllCommitSerially(t *testing.T) {
	t.Parallel()
	d := open(t)
	const n = 100
	var wg sync.WaitGroup
	errs := make([]error, n)
	seen := make([]int, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = d.Write(context.Background(), func(tx *Tx) error {
				if err := tx.Get(&seen[i], `SELECT COUNT(*) FROM items`); err != nil {
					return err
				}
				_, err := tx.Exec(`INSERT INTO items (id, name) VALUES (?, ?)`, i, fmt.Sprint("item", i))
				return err
			})
		})
	}
	wg.Wait()
	counts := map[int]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("write %d: %v", i, errs[i])
		}
		counts[seen[i]] = true
	}
	// Run one at a time, the n fns saw 0, 1, ..., n-1 rows before them.
	for c := range n {
		if !counts[c] {
			t.Errorf("no write saw exactly %d rows before it; fns did not run one after another", c)
		}
	}
	if got := len(itemIDs(t, d)); got != n {
		t.Errorf("committed %d items, want %d", got, n)
	}
}

// Writes queued while the writer is busy are taken as one group: one transaction, run in queue
// order, each fn seeing the earlier fns' uncommitted writes.
func TestGroupCommitGroupsQueuedWrites(t *testing.T) {
	t.Parallel()
	d := open(t)
	release := holdWriter(t, d)
	const n = 20
	txs := make([]any, n)
	seen := make([][]int, n)
	results := make([]<-chan error, n)
	for i := range n {
		results[i] = enqueue(context.Background(), d, func(tx *Tx) error {
			txs[i] = tx.tx
			if err := tx.Select(&seen[i], `SELECT id FROM items ORDER BY id`); err != nil {
				return err
			}
			return insert(i, fmt.Sprint("item", i))(tx)
		})
	}
	release()
	for i := range n {
		if err := <-results[i]; err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for i := range n {
		if txs[i] != txs[0] {
			t.Errorf("write %d ran in another transaction than write 0; want one group", i)
		}
		if len(seen[i]) != i {
			t.Errorf("write %d saw items %v, want the %d written before it in the group", i, seen[i], i)
		}
	}
	if got := len(itemIDs(t, d)); got != n {
		t.Errorf("committed %d items, want %d", got, n)
	}
}

// MaxBatch bounds a group: more queued writes than that are split across transactions.
func TestGroupCommitRespectsMaxBatch(t *testing.T) {
	t.Parallel()
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"), Options{Migrations: testMigrations, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	release := holdWriter(t, d)
	txs := make([]any, 3)
	var results []<-chan error
	for i := range 3 {
		results = append(results, enqueue(context.Background(), d, func(tx *Tx) error { txs[i] = tx.tx; return nil }))
	}
	release()
	for _, r := range results {
		if err := <-r; err != nil {
			t.Fatal(err)
		}
	}
	if txs[0] != txs[1] || txs[1] != txs[2] {
		t.Errorf("three writes queued with MaxBatch 3 did not share one transaction")
	}
}

// One failing fn inside a group is rolled back alone (its savepoint); the others commit, and the
// fn after it does not see its writes.
func TestGroupFailingWriteRolledBackAlone(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name    string
		fail    func(*Tx) error
		wantErr func(error) bool
	}{
		{
			name: "returns an error after writing",
			fail: func(tx *Tx) error {
				if err := insert(2, "two")(tx); err != nil {
					return err
				}
				return boom
			},
			wantErr: func(err error) bool { return errors.Is(err, boom) },
		},
		{
			name: "statement fails after a write",
			fail: func(tx *Tx) error {
				if err := insert(2, "two")(tx); err != nil {
					return err
				}
				return insert(3, "one")(tx) // name "one" is taken
			},
			wantErr: IsUniqueViolation,
		},
		{
			name: "panics after writing",
			fail: func(tx *Tx) error {
				if err := insert(2, "two")(tx); err != nil {
					return err
				}
				panic("bad request")
			},
			wantErr: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "panic in write: bad request")
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := open(t)
			release := holdWriter(t, d)
			var txs [3]any
			var sawTwo bool
			first := enqueue(context.Background(), d, func(tx *Tx) error { txs[0] = tx.tx; return insert(1, "one")(tx) })
			failing := enqueue(context.Background(), d, func(tx *Tx) error { txs[1] = tx.tx; return tc.fail(tx) })
			last := enqueue(context.Background(), d, func(tx *Tx) error {
				txs[2] = tx.tx
				var n int
				if err := tx.Get(&n, `SELECT COUNT(*) FROM items WHERE id = 2`); err != nil {
					return err
				}
				sawTwo = n > 0
				return insert(4, "four")(tx)
			})
			release()
			if err := <-first; err != nil {
				t.Errorf("first write: %v", err)
			}
			if err := <-failing; !tc.wantErr(err) {
				t.Errorf("failing write returned %v", err)
			}
			if err := <-last; err != nil {
				t.Errorf("last write: %v", err)
			}
			if txs[0] != txs[1] || txs[1] != txs[2] {
				t.Fatalf("the three writes were not one group; the test proves nothing")
			}
			if sawTwo {
				t.Errorf("the write after the failed one saw its rolled-back row")
			}
			wantItems(t, d, 1, 4)
			// The writer is still healthy.
			if err := d.Write(context.Background(), insert(5, "five")); err != nil {
				t.Errorf("write after the group: %v", err)
			}
		})
	}
}

// A group runs without savepoints, and again with them only when a request failed after it
// changed something: a request that fails before writing (or whose compare-and-set matched no
// row) costs the others nothing.
func TestGroupRunsAgainOnlyForDirtyFailures(t *testing.T) {
	t.Parallel()
	errNope := errors.New("nope")
	tests := []struct {
		name      string
		fail      func(*Tx) error
		wantCalls [2]int // calls of the requests before and after it
	}{
		{"fails after a read", func(tx *Tx) error {
			var n int
			if err := tx.Get(&n, `SELECT COUNT(*) FROM items`); err != nil {
				return err
			}
			return errNope
		}, [2]int{1, 1}},
		{"fails on a read that finds nothing", func(tx *Tx) error {
			var n int
			return tx.Get(&n, `SELECT id FROM items WHERE id = 99`)
		}, [2]int{1, 1}},
		{"compare-and-set matched nothing", func(tx *Tx) error {
			return ExpectOne(tx.Exec(`UPDATE items SET name = 'x' WHERE id = 99`))
		}, [2]int{1, 1}},
		{"fails after an insert", func(tx *Tx) error {
			if err := insert(2, "two")(tx); err != nil {
				return err
			}
			return errNope
		}, [2]int{2, 1}},
		{"statement fails", func(tx *Tx) error { return insert(3, "one")(tx) }, [2]int{2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := open(t)
			release := holdWriter(t, d)
			var calls [2]int
			first := enqueue(context.Background(), d, func(tx *Tx) error { calls[0]++; return insert(1, "one")(tx) })
			failing := enqueue(context.Background(), d, tc.fail)
			last := enqueue(context.Background(), d, func(tx *Tx) error { calls[1]++; return insert(4, "four")(tx) })
			release()
			if err := <-first; err != nil {
				t.Errorf("first write: %v", err)
			}
			if err := <-failing; err == nil {
				t.Error("the failing write succeeded")
			}
			if err := <-last; err != nil {
				t.Errorf("last write: %v", err)
			}
			if calls != tc.wantCalls {
				t.Errorf("the requests before and after it ran %v times, want %v", calls, tc.wantCalls)
			}
			wantItems(t, d, 1, 4)
		})
	}
}

// A write alone in its group that fails is rolled back (no savepoint path).
func TestSingleFailingWriteRolledBack(t *testing.T) {
	t.Parallel()
	d := open(t)
	boom := errors.New("boom")
	err := d.Write(context.Background(), func(tx *Tx) error {
		if err := insert(1, "one")(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Write = %v, want %v", err, boom)
	}
	err = d.Write(context.Background(), func(tx *Tx) error {
		if err := insert(2, "two")(tx); err != nil {
			return err
		}
		panic("oops")
	})
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("panicking Write = %v, want a panic error", err)
	}
	wantItems(t, d)
	if err := d.Write(context.Background(), insert(3, "three")); err != nil {
		t.Fatalf("Write after failures: %v", err)
	}
	wantItems(t, d, 3)
}

// AfterCommit hooks run once the write is committed (a reader already sees it), and never for a
// write that failed, whether alone or inside a group.
func TestAfterCommit(t *testing.T) {
	t.Parallel()
	d := open(t)
	var visible []int
	hook := func(id int) func() {
		return func() {
			var n int
			if err := d.Get(context.Background(), &n, `SELECT COUNT(*) FROM items WHERE id = ?`, id); err != nil {
				t.Errorf("hook read: %v", err)
			}
			if n == 1 {
				visible = append(visible, id)
			}
		}
	}
	ran := map[string]bool{}
	if err := d.Write(context.Background(), func(tx *Tx) error {
		tx.AfterCommit(hook(1))
		tx.AfterCommit(func() { ran["second hook"] = true })
		return insert(1, "one")(tx)
	}); err != nil {
		t.Fatal(err)
	}
	_ = d.Write(context.Background(), func(tx *Tx) error {
		tx.AfterCommit(func() { ran["failed single"] = true })
		return errors.New("fail")
	})

	release := holdWriter(t, d)
	ok := enqueue(context.Background(), d, func(tx *Tx) error { tx.AfterCommit(hook(2)); return insert(2, "two")(tx) })
	bad := enqueue(context.Background(), d, func(tx *Tx) error {
		tx.AfterCommit(func() { ran["failed in group"] = true })
		return errors.New("fail")
	})
	release()
	if err := <-ok; err != nil {
		t.Fatal(err)
	}
	if err := <-bad; err == nil {
		t.Fatal("failing write in group returned nil")
	}

	if fmt.Sprint(visible) != "[1 2]" {
		t.Errorf("hooks saw committed rows %v, want [1 2]", visible)
	}
	if !ran["second hook"] {
		t.Errorf("second hook of a committed write did not run")
	}
	for _, k := range []string{"failed single", "failed in group"} {
		if ran[k] {
			t.Errorf("AfterCommit ran for a write that failed (%s)", k)
		}
	}
}

// A COMMIT that fails (here a deferred foreign key) fails every write of the group, runs no hook,
// writes nothing, and leaves the writer usable.
func TestCommitFailure(t *testing.T) {
	t.Parallel()
	d := open(t)
	hookRan := false
	err := d.Write(context.Background(), func(tx *Tx) error {
		tx.AfterCommit(func() { hookRan = true })
		if err := insert(1, "one")(tx); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO children (id, item_id) VALUES (1, 99)`) // no item 99: fails at COMMIT
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "commit") {
		t.Fatalf("Write = %v, want a commit error", err)
	}
	if hookRan {
		t.Errorf("AfterCommit ran although the commit failed")
	}
	wantItems(t, d)
	if err := d.Write(context.Background(), insert(2, "two")); err != nil {
		t.Fatalf("Write after a failed commit: %v", err)
	}
	wantItems(t, d, 2)
}

// A write whose context ends before the writer reaches it is not run: the caller gets the context
// error and nothing is written.
func TestWriteContextEndedBeforeRun(t *testing.T) {
	t.Parallel()
	t.Run("cancelled before Write", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ran := false
		err := d.Write(ctx, func(tx *Tx) error { ran = true; return insert(1, "one")(tx) })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Write = %v, want context.Canceled", err)
		}
		if ran {
			t.Errorf("fn ran although its context was cancelled")
		}
		wantItems(t, d)
	})
	t.Run("cancelled while queued", func(t *testing.T) {
		t.Parallel()
		d := open(t)
		release := holdWriter(t, d)
		ctx, cancel := context.WithCancel(context.Background())
		ran := false
		cancelled := enqueue(ctx, d, func(tx *Tx) error { ran = true; return insert(1, "one")(tx) })
		other := enqueue(context.Background(), d, insert(2, "two"))
		cancel()
		release()
		if err := <-cancelled; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled write = %v, want context.Canceled", err)
		}
		if err := <-other; err != nil {
			t.Errorf("other write of the group: %v", err)
		}
		if ran {
			t.Errorf("fn ran although its context was cancelled")
		}
		wantItems(t, d, 2)
	})
}

// Close runs the writes already queued, then Write refuses with ErrClosed (and never hangs).
func TestCloseDrainsQueueThenRefuses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.db")
	d, err := Open(context.Background(), path, Options{Migrations: testMigrations})
	if err != nil {
		t.Fatal(err)
	}
	release := holdWriter(t, d)
	var queued []<-chan error
	for i := range 5 {
		queued = append(queued, enqueue(context.Background(), d, insert(i, fmt.Sprint("item", i))))
	}
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	<-d.w.closing // Close has begun, with five writes queued behind the holding one.
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, r := range queued {
		if err := <-r; err != nil {
			t.Errorf("queued write %d: %v", i, err)
		}
	}

	// Write after Close: ErrClosed every time. Run it where a hang shows as a failure, not a
	// stuck test binary.
	done := make(chan error, 1)
	go func() {
		for range 50 {
			if err := d.Write(context.Background(), insert(100, "late")); !errors.Is(err, ErrClosed) {
				done <- fmt.Errorf("Write after Close = %v, want ErrClosed", err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write after Close did not return")
	}

	reopened := openAt(t, path)
	wantItems(t, reopened, 0, 1, 2, 3, 4)
}

// Writes racing Close each get an answer: nil for a write that is on disk, ErrClosed for one that
// never ran. None hangs.
func TestCloseRacingWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.db")
	d, err := Open(context.Background(), path, Options{Migrations: testMigrations})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = d.Write(context.Background(), insert(i, fmt.Sprint("item", i))) })
		if i == n/2 {
			wg.Go(func() { d.Close() })
		}
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(20 * time.Second):
		t.Fatal("a Write racing Close did not return")
	}
	committed := map[int]bool{}
	for _, id := range itemIDs(t, openAt(t, path)) {
		committed[id] = true
	}
	for i, err := range errs {
		switch {
		case err == nil && !committed[i]:
			t.Errorf("write %d returned nil but is not on disk", i)
		case errors.Is(err, ErrClosed) && committed[i]:
			t.Errorf("write %d returned ErrClosed but is on disk", i)
		case err != nil && !errors.Is(err, ErrClosed):
			t.Errorf("write %d: %v, want nil or ErrClosed", i, err)
		}
	}
}

// Committed data survives a close and reopen; the migrations run once (reopening is a no-op).
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "dir", "test.db")
	d, err := Open(context.Background(), path, Options{Migrations: testMigrations})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Write(context.Background(), insert(7, "seven")); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		d = openAt(t, path)
		wantItems(t, d, 7)
		var seeded, versions int
		if err := d.Get(context.Background(), &seeded, `SELECT COUNT(*) FROM seeded`); err != nil {
			t.Fatal(err)
		}
		if seeded != 1 {
			t.Errorf("seed row present %d times, want 1 (migration ran again)", seeded)
		}
		if err := d.Get(context.Background(), &versions, `SELECT COUNT(*) FROM goose_db_version WHERE version_id > 0`); err != nil {
			t.Fatal(err)
		}
		if versions != 2 {
			t.Errorf("goose recorded %d applied migrations, want 2", versions)
		}
		d.Close()
	}
}

func TestOpenBadMigration(t *testing.T) {
	t.Parallel()
	bad := fstest.MapFS{"00001_bad.sql": {Data: []byte("-- +goose Up\nCREATE TABLE (;\n")}}
	d, err := Open(context.Background(), filepath.Join(t.TempDir(), "bad.db"), Options{Migrations: bad})
	if err == nil {
		d.Close()
		t.Fatal("Open with a broken migration succeeded")
	}
}

// The read pool cannot write, so a write that bypassed the group writer would fail loudly.
func TestReadPoolIsReadOnly(t *testing.T) {
	t.Parallel()
	d := open(t)
	if _, err := d.read.Exec(`INSERT INTO items (id, name) VALUES (1, 'x')`); err == nil {
		t.Fatal("insert through the read pool succeeded")
	}
}

func TestGetNoRows(t *testing.T) {
	t.Parallel()
	d := open(t)
	var id int
	if err := d.Get(context.Background(), &id, `SELECT id FROM items WHERE id = ?`, 1); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("Get = %v, want sql.ErrNoRows", err)
	}
}

func TestNamedExec(t *testing.T) {
	t.Parallel()
	d := open(t)
	item := struct {
		ID   int    `db:"id"`
		Name string `db:"name"`
	}{ID: 3, Name: "three"}
	if err := d.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.NamedExec(`INSERT INTO items (id, name) VALUES (:id, :name)`, item)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := d.Get(context.Background(), &name, `SELECT name FROM items WHERE id = 3`); err != nil || name != "three" {
		t.Fatalf("name = %q, %v; want three", name, err)
	}
}

// fakeResult is a sql.Result with a given row count.
type fakeResult struct {
	n   int64
	err error
}

func (r fakeResult) LastInsertId() (int64, error) { return 0, nil }
func (r fakeResult) RowsAffected() (int64, error) { return r.n, r.err }

func TestExpectOne(t *testing.T) {
	t.Parallel()
	execErr := errors.New("exec failed")
	countErr := errors.New("no count")
	tests := []struct {
		name string
		res  sql.Result
		err  error
		want error
	}{
		{"one row", fakeResult{n: 1}, nil, nil},
		{"no row", fakeResult{n: 0}, nil, ErrConflict},
		{"two rows", fakeResult{n: 2}, nil, ErrConflict},
		{"exec error passes through", nil, execErr, execErr},
		{"rows affected error passes through", fakeResult{err: countErr}, nil, countErr},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExpectOne(tc.res, tc.err); !errors.Is(got, tc.want) || (tc.want == nil && got != nil) {
				t.Errorf("ExpectOne = %v, want %v", got, tc.want)
			}
		})
	}
}

// ExpectOne over a real compare-and-set UPDATE.
func TestExpectOneCompareAndSet(t *testing.T) {
	t.Parallel()
	d := open(t)
	if err := d.Write(context.Background(), insert(1, "old")); err != nil {
		t.Fatal(err)
	}
	cas := func(from, to string) error {
		return d.Write(context.Background(), func(tx *Tx) error {
			return ExpectOne(tx.Exec(`UPDATE items SET name = ? WHERE id = 1 AND name = ?`, to, from))
		})
	}
	if err := cas("old", "new"); err != nil {
		t.Fatalf("first compare-and-set: %v", err)
	}
	if err := cas("old", "newer"); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale compare-and-set = %v, want ErrConflict", err)
	}
}

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	d := open(t)
	if err := d.Write(context.Background(), insert(1, "one")); err != nil {
		t.Fatal(err)
	}
	errOf := func(fn func(*Tx) error) error { return d.Write(context.Background(), fn) }
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"primary key", errOf(insert(1, "other")), true},
		{"unique column", errOf(insert(2, "one")), true},
		{"wrapped", fmt.Errorf("create: %w", errOf(insert(1, "x"))), true},
		{"not null", errOf(func(tx *Tx) error {
			_, err := tx.Exec(`INSERT INTO items (id, name) VALUES (3, NULL)`)
			return err
		}), false},
		{"syntax error", errOf(func(tx *Tx) error { _, err := tx.Exec(`INSERT INTO`); return err }), false},
		{"plain error", errors.New("UNIQUE constraint failed"), false},
		{"nil", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "nil" && tc.err == nil {
				t.Fatal("the statement did not fail")
			}
			if got := IsUniqueViolation(tc.err); got != tc.want {
				t.Errorf("IsUniqueViolation(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestMicros(t *testing.T) {
	t.Parallel()
	local := time.FixedZone("UTC+5", 5*3600)
	tm := time.Date(2026, 3, 1, 12, 30, 0, 123456789, local)
	got := FromMicros(Micros(tm))
	if !got.Equal(tm.Truncate(time.Microsecond)) || got.Location() != time.UTC {
		t.Errorf("FromMicros(Micros(%v)) = %v, want the same instant to the microsecond, in UTC", tm, got)
	}
	if v := NullMicros(time.Time{}); v.Valid {
		t.Errorf("NullMicros(zero) = %v, want NULL", v)
	}
	if got := FromNullMicros(NullMicros(tm)); !got.Equal(tm.Truncate(time.Microsecond)) {
		t.Errorf("FromNullMicros(NullMicros(%v)) = %v", tm, got)
	}
	if got := FromNullMicros(sql.NullInt64{}); !got.IsZero() {
		t.Errorf("FromNullMicros(NULL) = %v, want the zero time", got)
	}
}

// TestSQLiteFilesOwnerOnly: a new database and its WAL files are readable by their owner only, and
// opening an existing file that others could read makes it private.
func TestSQLiteFilesOwnerOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "private.db")
	d := openAt(t, path)
	if err := d.Write(context.Background(), insert(1, "one")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %o, want no access for group and others", filepath.Base(f), perm)
		}
	}
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, old)
	if fi, err := os.Stat(old); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("an existing database readable by others: mode %v after opening, %v; want 0600", fi.Mode().Perm(), err)
	}
}
