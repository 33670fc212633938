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
	now := v.clk.Now()
	v.mu.Lock()
	c, ok := v.cache[d]
	v.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	p, until, found, err := v.store.lookup(ctx, secret)
	if err != nil {
		return Principal{}, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !found {
		delete(v.cache, d)
		return Principal{}, apierr.Unauthenticated("invalid API key")
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
	return p, nil
}
