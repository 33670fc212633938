package auth

import (
	"context"
	"sync"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// ErrKeyRevoked is the status an open stream ends with once its API key is revoked (or, when keys
// get an expiry, has expired): the key was good when the stream opened, and no longer is.
var ErrKeyRevoked = status.Error(codes.Unauthenticated, "API key revoked or expired")

// DefaultStreamsPerAccount is the default of the services' -max-streams-per-account: generous for
// a client that watches a few bundles per process across a few processes, far below what hurt.
const DefaultStreamsPerAccount = 100

// openStreams is the registry of the authenticated streams open on a server. It does two things
// that a check at open time cannot:
//
//   - it caps the streams an account has open at once (the rate limit counts opens, and one key
//     once held 6,272 WatchEvents streams);
//   - it re-verifies the keys of the open streams, so a stream whose key is revoked ends with
//     ErrKeyRevoked within one cache TTL, the bound unary calls have.
//
// The re-verification is one loop for the whole server, not a goroutine or timer per stream: every
// TTL it asks the store once per distinct key (streams are grouped by key digest, so 6,000 streams
// on one key cost one lookup) and cancels the streams of the keys the store definitely refuses. The
// loop runs only while a stream is open, so an idle server (and every test that opens no stream)
// has no ticker. Only the key's digest is kept, never the secret.
type openStreams struct {
	v   *Verifier
	max int // per account; 0 means no cap

	mu        sync.Mutex
	byKey     map[string]map[*openStream]struct{} // by key digest
	byAccount map[string]int
	stopLoop  chan struct{} // non-nil while the loop runs; closed when the last stream ends
}

// openStream is one open stream: the cancel of the context its handler sees.
type openStream struct {
	cancel context.CancelCauseFunc
}

func newOpenStreams(v *Verifier, max int) *openStreams {
	return &openStreams{v: v, max: max, byKey: map[string]map[*openStream]struct{}{}, byAccount: map[string]int{}}
}

// open registers a stream of account's key (by digest d), or refuses it with ResourceExhausted
// when the account is at its cap. It returns the context for the handler, cancelled with
// ErrKeyRevoked as its cause once the key is refused, and the func that unregisters the stream;
// the caller defers it, so the count drops however the handler ends (a panic included).
func (r *openStreams) open(ctx context.Context, d, account string) (context.Context, func(), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max > 0 && r.byAccount[account] >= r.max {
		return nil, nil, apierr.ResourceExhausted("account %s already has %d streams open, the most allowed per account; close one first", account, r.max)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	s := &openStream{cancel: cancel}
	set := r.byKey[d]
	if set == nil {
		set = map[*openStream]struct{}{}
		r.byKey[d] = set
	}
	set[s] = struct{}{}
	r.byAccount[account]++
	if r.stopLoop == nil {
		// The ticker is made here, before the handler runs, rather than in the loop's goroutine:
		// a test on a fake clock that has seen the stream open may Advance at once.
		r.stopLoop = make(chan struct{})
		go r.loop(r.v.clk.NewTicker(r.v.ttl), r.stopLoop)
	}
	return ctx, func() { r.close(d, account, s) }, nil
}

func (r *openStreams) close(d, account string, s *openStream) {
	s.cancel(context.Canceled)
	r.mu.Lock()
	defer r.mu.Unlock()
	if set := r.byKey[d]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(r.byKey, d)
		}
	}
	if r.byAccount[account]--; r.byAccount[account] <= 0 {
		delete(r.byAccount, account)
	}
	if len(r.byKey) == 0 && r.stopLoop != nil {
		close(r.stopLoop)
		r.stopLoop = nil
	}
}

// loop rechecks every TTL until stop is closed.
func (r *openStreams) loop(t clockwork.Ticker, stop <-chan struct{}) {
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.Chan():
		}
		r.recheck(context.Background())
	}
}

// recheck asks the store about the key of every open stream, bypassing the verifier's cache (a
// cached answer may be a TTL old, which would let a revoked key stream for up to two TTLs), and
// ends the streams of the keys it refuses. A fault (the database unreachable, or the pass out of
// its one-TTL budget) is never a verdict: those streams stay open and are asked about again at the
// next pass. A revoked key therefore keeps its streams for as long as the store cannot be read,
// exactly as the cache would keep it working for unary calls if the store could not be read.
func (r *openStreams) recheck(ctx context.Context) {
	r.mu.Lock()
	keys := make([]string, 0, len(r.byKey))
	for d := range r.byKey {
		keys = append(keys, d)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.v.ttl)
	defer cancel()
	for _, d := range keys {
		if _, found, err := r.v.refresh(ctx, d); err != nil || found {
			continue
		}
		r.mu.Lock()
		ended := make([]*openStream, 0, len(r.byKey[d]))
		for s := range r.byKey[d] {
			ended = append(ended, s)
		}
		r.mu.Unlock()
		// The handlers see their contexts end; each stream leaves the registry when its
		// handler returns (Interceptor.Stream), which maps the end to ErrKeyRevoked.
		for _, s := range ended {
			s.cancel(ErrKeyRevoked)
		}
	}
}

// counts returns how many streams are open, and how many distinct keys they use.
func (r *openStreams) counts() (streams, keys int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, set := range r.byKey {
		streams += len(set)
	}
	return streams, len(r.byKey)
}
