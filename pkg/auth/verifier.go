package auth

import (
	"context"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// DefaultCacheTTL is how long a verified key is trusted without asking the store again; it is the
// bound on how long a revoked key keeps working.
const DefaultCacheTTL = 2 * time.Second

// Verifier checks API keys against the store, caching positive answers for a short TTL.
// Negative answers are not cached, so a key created a moment ago works at once.
type Verifier struct {
	store *Store
	clk   clockwork.Clock
	ttl   time.Duration

	mu    sync.Mutex
	cache map[string]cached // by digest, never by secret
}

type cached struct {
	p       Principal
	expires time.Time
}

// NewVerifier returns a verifier over store; ttl <= 0 means DefaultCacheTTL.
func NewVerifier(store *Store, clk clockwork.Clock, ttl time.Duration) *Verifier {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Verifier{store: store, clk: clk, ttl: ttl, cache: make(map[string]cached)}
}

// Verify returns the principal of a key, or Unauthenticated.
func (v *Verifier) Verify(ctx context.Context, secret string) (Principal, error) {
	if !wellFormed(secret) {
		return Principal{}, apierr.Unauthenticated("invalid API key")
	}
	d := digest(secret)
	v.mu.Lock()
	c, ok := v.cache[d]
	v.mu.Unlock()
	if ok && v.clk.Now().Before(c.expires) {
		return c.p, nil
	}
	p, found, err := v.refresh(ctx, d)
	if err != nil {
		return Principal{}, err
	}
	if !found {
		return Principal{}, apierr.Unauthenticated("invalid API key")
	}
	return p, nil
}

// refresh asks the store about the key with digest d, whatever the cache holds, and caches the
// answer. found false is the store's definite "no such key, revoked, or expired"; an error is a fault (the database is unreachable) and says nothing about the key.
// The open-stream re-verification (streams.go) calls it directly, so a stream learns of a
// revocation within one TTL rather than up to two (a cached answer can be a TTL old).
func (v *Verifier) refresh(ctx context.Context, d string) (Principal, bool, error) {
	now := v.clk.Now() // before the read: the answer is trusted a TTL from when it was asked for
	p, until, found, err := v.store.lookupDigest(ctx, d)
	if err != nil {
		return Principal{}, false, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !found {
		delete(v.cache, d)
		return Principal{}, false, nil
	}
	if len(v.cache) > 10000 {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
	}
	expires := now.Add(v.ttl)
	if !until.IsZero() && until.Before(expires) {
		expires = until // an expiring key is not trusted past its expiry
	}
	v.cache[d] = cached{p: p, expires: expires}
	return p, true, nil
}
