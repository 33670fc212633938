package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// groupWriter owns the writer connection. One goroutine takes the writes queued while the previous
// commit was being synced, runs them in one transaction, each in its own savepoint, and commits
// once. Nobody waits on a lock for the connection, so no waiter is starved (database/sql hands a
// freed connection to a random waiter, which starved an outbox relay behind request writes in an
// earlier prototype).
//
// Both dialects use it. On PostgreSQL the group's transaction is SERIALIZABLE, takes the store's
// SerialWrites lock first, and is bounded by writeTimeout; a group that loses a race (a
// serialization failure or deadlock, in the commit or in any of its writes) or whose connection
// turned out dead before it began is run again whole, after a random pause, up to writeAttempts
// times. Writes were one transaction each there before: a renewal's four writes were four commits
// and four turns of the lock, one at a time per replica (78 completed renewals/s, against 451 on
// SQLite's group commit).
type groupWriter struct {
	db       *sqlx.DB
	maxBatch int
	log      *slog.Logger
	pg       *pgGroup // nil on SQLite

	reqs      chan *writeReq
	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}
}

type writeReq struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("db: closed")

// pgGroup is what a PostgreSQL group transaction adds.
type pgGroup struct {
	lock string // Options.SerialWrites: the table locked first, or ""
}

func newGroupWriter(db *sqlx.DB, maxBatch int, log *slog.Logger, pg *pgGroup) *groupWriter {
	w := &groupWriter{
		db:       db,
		maxBatch: maxBatch,
		log:      log,
		pg:       pg,
		reqs:     make(chan *writeReq, maxBatch),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	go w.loop()
	return w
}

func (w *groupWriter) do(ctx context.Context, fn func(*Tx) error) error {
	// Refuse at once after Close: in the select below a free slot in the queue is as ready as the
	// closed channel, and select picks at random, so it could queue the request for a writer that
	// has already stopped.
	select {
	case <-w.closing:
		return ErrClosed
	default:
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case w.reqs <- r:
	case <-w.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the verdict even if ctx ends: the write may already be committed, and
	// the caller must not report failure for a write that happened.
	select {
	case err := <-r.done:
		return err
	case <-w.done:
		// The writer answers every request it takes before it stops. No answer means Close ran
		// concurrently and this request was queued after the writer's last look at the queue.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (w *groupWriter) close() {
	w.closeOnce.Do(func() { close(w.closing) })
	<-w.done
}

func (w *groupWriter) loop() {
	defer close(w.done)
	batch := make([]*writeReq, 0, w.maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-w.reqs:
			batch = append(batch, r)
		case <-w.closing:
			// Finish what was queued before Close, then refuse the rest.
			for {
				select {
				case r := <-w.reqs:
					w.run([]*writeReq{r})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < w.maxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		began := time.Now()
		w.run(batch)
		writerTotals.busy.Add(int64(time.Since(began)))
		writerTotals.groups.Add(1)
		writerTotals.writes.Add(int64(len(batch)))
	}
}

// WriterStats adds up the work of group-commit writers.
type WriterStats struct {
	// Groups is how many transactions the writers ran (attempts run again count once), and Writes
	// how many writes those carried.
	Groups, Writes int64
	// Busy is the wall time the writers spent on them: statements, commits, and the waits for
	// the CPU and the disk in between.
	Busy time.Duration
}

// Sub is what was added since earlier.
func (s WriterStats) Sub(earlier WriterStats) WriterStats {
	return WriterStats{Groups: s.Groups - earlier.Groups, Writes: s.Writes - earlier.Writes, Busy: s.Busy - earlier.Busy}
}

var writerTotals struct{ groups, writes, busy atomic.Int64 }

// WriterTotals returns the work of every database's writer in this process together, since it
// started. A benchmark reads it around a stretch of work: a Busy close to the stretch's length
// times the writers that were working means the work waited for the writers, which run one
// transaction at a time each.
func WriterTotals() WriterStats {
	return WriterStats{Groups: writerTotals.groups.Load(), Writes: writerTotals.writes.Load(),
		Busy: time.Duration(writerTotals.busy.Load())}
}

// run executes one group, again while it loses races (PostgreSQL; attempts is 1 on SQLite).
func (w *groupWriter) run(batch []*writeReq) {
	attempts := 1
	if w.pg != nil {
		attempts = writeAttempts
	}
	savepoints := false
	for attempt := 1; ; attempt++ {
		results, after, retry, undo := w.attempt(batch, attempt, savepoints)
		if undo {
			// A request failed after changing the transaction: run the group again, each
			// request in a savepoint this time, so that its changes can be undone alone.
			savepoints = true
			attempt--
			continue
		}
		if !retry || attempt == attempts {
			w.finish(batch, results, after)
			return
		}
		pause := min(time.Millisecond<<attempt, 100*time.Millisecond)
		time.Sleep(pause + rand.N(pause))
	}
}

// attempt runs the group once and returns each request's result, the AfterCommit functions of
// those committed, and whether the group lost a race and may be run again whole (nothing of it
// was committed then).
//
// Savepoints. A request that fails must leave no trace, while the others commit. Most requests
// succeed, and most that fail do so before they change anything (a read that finds the row
// missing, a compare-and-set that matched nothing), so the group first runs without a savepoint
// per request: that saves two statements per write, which on PostgreSQL are two round trips on
// the connection every write of the process waits for. When a request fails after a statement
// of it changed rows or failed (Tx.dirty), the group is rolled back and attempt reports undo, and
// run runs it again with savepoints (savepoints true), in which a failed request is rolled back to
// its savepoint. Requests run again are what PostgreSQL's retries already demand of them: fn only
// reads and writes through tx.
//
// On SQLite, statements run under a context that is never cancelled: cancelling a SQLite
// statement interrupts it, and an interrupted write inside an explicit transaction rolls back the
// whole transaction, that is, the other requests of the group too. On PostgreSQL they run under
// writeTimeout, not the callers' contexts, for the same reason and because a commit cut short by a
// cancelled call could have happened or not. A request whose context ended before its turn is
// skipped instead.
func (w *groupWriter) attempt(batch []*writeReq, attempt int, savepoints bool) (results []error, after []func(), retry, undo bool) {
	results = make([]error, len(batch))
	fail := func(err error) ([]error, []func(), bool, bool) {
		results, after, retry := w.failAll(results, err)
		return results, after, retry, false
	}
	var tx *sqlx.Tx
	var err error
	var deadline time.Time
	if w.pg == nil {
		tx, err = w.db.Beginx()
	} else {
		var cancel context.CancelFunc
		var gctx context.Context
		deadline = time.Now().Add(writeTimeout)
		gctx, cancel = context.WithDeadline(context.Background(), deadline)
		defer cancel()
		tx, err = w.db.BeginTxx(gctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		if err != nil && IsUnavailable(err) && attempt < 3 {
			// It did nothing: when its pooled connection turned out dead (the server restarted),
			// the next attempt takes another, or a new one.
			return fillErr(results, fmt.Errorf("db: begin: %w", err)), nil, true, false
		}
		if err == nil && w.pg.lock != "" {
			if _, lerr := tx.ExecContext(gctx, `LOCK TABLE `+w.pg.lock+` IN EXCLUSIVE MODE`); lerr != nil {
				_ = tx.Rollback()
				return fail(fmt.Errorf("db: lock %s: %w", w.pg.lock, lerr))
			}
		}
	}
	if err != nil {
		return fillErr(results, fmt.Errorf("db: begin: %w", err)), nil, false, false
	}
	single := len(batch) == 1
	savepoints = savepoints && !single
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		ctx := context.WithoutCancel(r.ctx)
		if w.pg != nil {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		t := &Tx{tx: tx, ctx: ctx}
		if savepoints {
			if _, err := tx.Exec("SAVEPOINT grp"); err != nil {
				return w.abort(tx, batch, results, fmt.Errorf("db: savepoint: %w", err))
			}
		}
		err := call(r.fn, t)
		if err != nil && w.pg != nil && IsRetryable(err) {
			// A lost race fails the whole transaction on PostgreSQL, not just this write.
			_ = tx.Rollback()
			return fail(err)
		}
		if err != nil {
			results[i] = err
			switch {
			case single:
				_ = tx.Rollback()
				return results, nil, false, false
			case savepoints:
				if _, rbErr := tx.Exec("ROLLBACK TO grp"); rbErr != nil {
					return w.abort(tx, batch, results, fmt.Errorf("db: rollback to savepoint: %w", rbErr))
				}
			case t.dirty:
				_ = tx.Rollback()
				return results, nil, false, true
			}
		}
		if savepoints {
			if _, err := tx.Exec("RELEASE grp"); err != nil {
				return w.abort(tx, batch, results, fmt.Errorf("db: release savepoint: %w", err))
			}
		}
		if err == nil {
			after = append(after, t.after...)
		}
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("db: commit: %w", err)
		if w.pg == nil || !IsRetryable(err) {
			w.log.Error("group commit failed", "requests", len(batch), "err", err)
		}
		return fail(err)
	}
	return results, after, false, false
}

// abort rolls the whole group back after a failure of the transaction itself (not of one fn).
func (w *groupWriter) abort(tx *sqlx.Tx, batch []*writeReq, results []error, err error) ([]error, []func(), bool, bool) {
	_ = tx.Rollback()
	if w.pg == nil || !IsRetryable(err) {
		w.log.Error("group transaction aborted", "requests", len(batch), "err", err)
	}
	results, after, retry := w.failAll(results, err)
	return results, after, retry, false
}

// failAll gives err to every request of a group that committed nothing, except those that
// failed on their own (their error says more), and says whether the group may run again: a lost
// race on PostgreSQL, in which case every request gets err, since each will run again.
func (w *groupWriter) failAll(results []error, err error) ([]error, []func(), bool) {
	retry := w.pg != nil && IsRetryable(err)
	for i := range results {
		if results[i] == nil || retry {
			results[i] = err
		}
	}
	return results, nil, retry
}

func (w *groupWriter) finish(batch []*writeReq, results []error, after []func()) {
	for _, f := range after {
		f()
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

func fillErr(results []error, err error) []error {
	for i := range results {
		results[i] = err
	}
	return results
}

// call runs fn, turning a panic into an error so one bad request cannot take down the group.
func call(fn func(*Tx) error, t *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("db: panic in write: %v", p)
		}
	}()
	return fn(t)
}
