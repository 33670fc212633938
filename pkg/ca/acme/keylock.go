package acme

import (
	"context"
	"sync"
)

// refLocks serializes the calls about one application inside this process, so that two
// concurrent Submits or polls of it do not both create an order (each order counts against the
// CA's rate limits) or both finalize. Across processes the compare-and-set updates of the store
// keep one order and one verdict; the lock only saves the CA the duplicate requests.
type refLocks struct {
	mu    sync.Mutex
	locks map[string]*refLock
}

type refLock struct {
	ch      chan struct{}
	waiters int
}

// lock takes ref's lock, waiting at most as long as ctx; unlock releases it.
func (r *refLocks) lock(ctx context.Context, ref string) (unlock func(), err error) {
	r.mu.Lock()
	if r.locks == nil {
		r.locks = map[string]*refLock{}
	}
	l := r.locks[ref]
	if l == nil {
		l = &refLock{ch: make(chan struct{}, 1)}
		r.locks[ref] = l
	}
	l.waiters++
	r.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; r.release(ref, l) }, nil
	case <-ctx.Done():
		r.release(ref, l)
		return nil, ctx.Err()
	}
}

func (r *refLocks) release(ref string, l *refLock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l.waiters--; l.waiters == 0 {
		delete(r.locks, ref)
	}
}
