package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/jmoiron/sqlx"
)

// groupWriter owns the writer connection. One goroutine takes the writes queued while the previous
// commit was being synced, runs them in one transaction, each in its own savepoint, and commits
// once. Nobody waits on a lock for the connection, so no waiter is starved (database/sql hands a
// freed connection to a random waiter, which starved an outbox relay behind request writes in an
// earlier prototype).
type groupWriter struct {
	db       *sqlx.DB
	maxBatch int
	log      *slog.Logger

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

func newGroupWriter(db *sqlx.DB, maxBatch int, log *slog.Logger) *groupWriter {
	w := &groupWriter{
		db:       db,
		maxBatch: maxBatch,
		log:      log,
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
		w.run(batch)
	}
}

// run executes one group. Statements run under a context that is never cancelled: cancelling a
// SQLite statement interrupts it, and an interrupted write inside an explicit transaction rolls
// back the whole transaction, that is, the other requests of the group too. A request whose
// context ended before its turn is skipped instead.
func (w *groupWriter) run(batch []*writeReq) {
	results := make([]error, len(batch))
	var after []func()

	tx, err := w.db.Beginx()
	if err != nil {
		w.finish(batch, fillErr(results, fmt.Errorf("db: begin: %w", err)), nil)
		return
	}
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		t := &Tx{tx: tx, ctx: context.WithoutCancel(r.ctx)}
		if !single {
			if _, err := tx.Exec("SAVEPOINT grp"); err != nil {
				w.abort(tx, batch, results, fmt.Errorf("db: savepoint: %w", err))
				return
			}
		}
		err := call(r.fn, t)
		if err != nil {
			results[i] = err
			if single {
				_ = tx.Rollback()
				w.finish(batch, results, nil)
				return
			}
			if _, rbErr := tx.Exec("ROLLBACK TO grp"); rbErr != nil {
				w.abort(tx, batch, results, fmt.Errorf("db: rollback to savepoint: %w", rbErr))
				return
			}
		}
		if !single {
			if _, err := tx.Exec("RELEASE grp"); err != nil {
				w.abort(tx, batch, results, fmt.Errorf("db: release savepoint: %w", err))
				return
			}
		}
		if err == nil {
			after = append(after, t.after...)
		}
	}
	if err := tx.Commit(); err != nil {
		err = fmt.Errorf("db: commit: %w", err)
		w.log.Error("group commit failed", "requests", len(batch), "err", err)
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
		w.finish(batch, results, nil)
		return
	}
	w.finish(batch, results, after)
}

// abort rolls the whole group back after a failure of the transaction itself (not of one fn).
func (w *groupWriter) abort(tx *sqlx.Tx, batch []*writeReq, results []error, err error) {
	_ = tx.Rollback()
	w.log.Error("group transaction aborted", "requests", len(batch), "err", err)
	for i := range results {
		if results[i] == nil {
			results[i] = err
		}
	}
	w.finish(batch, results, nil)
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
