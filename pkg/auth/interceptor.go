package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// Policy says who may call each method, by full method name
// ("/certhosting.order.v1.OrderService/PayOrder"): it is each service's whole authorization
// table. A method missing from the policy is refused: an RPC added without deciding who may call
// it fails closed.
type Policy map[string]Access

// Access is who may call one method.
type Access struct {
	Roles []Role
	// Bundles marks a method whose handler confines its answer to the caller's bundles
	// (Principal.Sees): only such methods accept a key limited to named bundles; every other
	// method refuses such a key with PermissionDenied.
	Bundles bool
}

// Allow is an Access for roles, refusing keys limited to bundles.
func Allow(roles ...Role) Access { return Access{Roles: roles} }

// AllowScoped is an Access for roles, keys limited to bundles included.
func AllowScoped(roles ...Role) Access { return Access{Roles: roles, Bundles: true} }

// publicPrefixes are the services anyone may call without a key: health checking and server
// reflection (so `grpcurl list` and load-balancer probes work).
var publicPrefixes = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// Interceptor authenticates every call and applies the policy and the per-account limits.
type Interceptor struct {
	v       *Verifier
	policy  Policy
	limits  *accountLimits // nil: no rate limit
	streams *openStreams
	// serviceIdentity, when set, is the name a service key's connection must prove with its
	// client certificate (WithServiceIdentity).
	serviceIdentity string
}

// Limits are what one account may use of a server. The zero value sets no limit.
type Limits struct {
	// Rate is the calls a second (unary calls and stream opens) an account may make, with bursts
	// of twice that; beyond, calls are refused with ResourceExhausted. 0 means no rate limit.
	Rate float64
	// StreamsPerAccount is how many authenticated streams an account may have open at once; the
	// stream that would pass it is refused with ResourceExhausted. 0 means no cap.
	StreamsPerAccount int
}

// NewInterceptor makes the interceptor.
func NewInterceptor(v *Verifier, policy Policy, l Limits) *Interceptor {
	i := &Interceptor{v: v, policy: policy, streams: newOpenStreams(v, max(0, l.StreamsPerAccount))}
	if l.Rate > 0 {
		i.limits = newAccountLimits(rate.Limit(l.Rate), max(1, int(2*l.Rate)))
	}
	return i
}

// OpenStreams reports how many authenticated streams are open, and on how many distinct keys.
func (i *Interceptor) OpenStreams() (streams, keys int) { return i.streams.counts() }

// accountLimits is a token bucket per account. A bucket that has filled up again behaves exactly
// like a new one, so the periodic sweep drops those without changing any answer: the map holds
// only the accounts that called within the last burst/rps seconds (two at the defaults) plus
// those since the last sweep, however many accounts call over the life of the process.
type accountLimits struct {
	rps   rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	nextSweep time.Time
}

// limitSweepEvery is how often allow drops full buckets.
const limitSweepEvery = time.Minute

func newAccountLimits(rps rate.Limit, burst int) *accountLimits {
	return &accountLimits{rps: rps, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from account's bucket at now, or says it is empty.
func (a *accountLimits) allow(account string, now time.Time) bool {
	a.mu.Lock()
	if !now.Before(a.nextSweep) {
		for id, l := range a.buckets {
			if l.TokensAt(now) >= float64(a.burst) {
				delete(a.buckets, id)
			}
		}
		a.nextSweep = now.Add(limitSweepEvery)
	}
	l, ok := a.buckets[account]
	if !ok {
		l = rate.NewLimiter(a.rps, a.burst)
		a.buckets[account] = l
	}
	// Under the lock, so a sweep cannot drop the bucket between this lookup and the token
	// taken from it (the account would get a fresh, full bucket).
	allowed := l.AllowN(now, 1)
	a.mu.Unlock()
	return allowed
}

type principalKey struct{}

// Caller returns the verified principal of the request. Handlers behind the interceptor can rely
// on it being present; ok is false only outside an authenticated call.
func Caller(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithCaller returns ctx carrying p; for tests of handlers called without the interceptor.
func WithCaller(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// authorize checks a call and returns its context carrying the caller, the caller, and the digest
// of its key ("" for a public method, which has neither).
func (i *Interceptor) authorize(ctx context.Context, method string) (context.Context, Principal, string, error) {
	for _, p := range publicPrefixes {
		if strings.HasPrefix(method, p) {
			return ctx, Principal{}, "", nil
		}
	}
	access, known := i.policy[method]
	if !known {
		return nil, Principal{}, "", apierr.PermissionDenied("method %s is not available", method)
	}
	secret, err := bearer(ctx)
	if err != nil {
		return nil, Principal{}, "", err
	}
	p, err := i.v.Verify(ctx, secret)
	if err != nil {
		return nil, Principal{}, "", err
	}
	name := method[strings.LastIndex(method, "/")+1:]
	if !slices.Contains(access.Roles, p.Role) {
		return nil, Principal{}, "", apierr.PermissionDenied("%s %s key may not call %s", article(p.Role), p.Role, name)
	}
	if p.Bundles != nil && !access.Bundles {
		return nil, Principal{}, "", apierr.PermissionDenied("key %s is limited to %d bundle(s) and may not call %s", p.KeyID, len(p.Bundles), name)
	}
	if p.Role == RoleService {
		if err := i.checkServiceIdentity(ctx, method); err != nil {
			return nil, Principal{}, "", err
		}
	}
	if i.limits != nil && !i.limits.allow(p.AccountID, time.Now()) {
		return nil, Principal{}, "", apierr.ResourceExhausted("account %s is over its rate limit of %.0f calls a second", p.AccountID, float64(i.limits.rps))
	}
	if slot, ok := ctx.Value(slotKey{}).(*Principal); ok {
		*slot = p
	}
	return WithCaller(ctx, p), p, digest(secret), nil
}

type slotKey struct{}

// WithSlot returns ctx with an empty Principal that the interceptor fills in once it has verified
// the caller; an outer interceptor (access logging) uses it to learn who called.
func WithSlot(ctx context.Context) (context.Context, *Principal) {
	p := new(Principal)
	return context.WithValue(ctx, slotKey{}, p), p
}

// bearer reads the key from the `authorization: Bearer <key>` metadata.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", apierr.Unauthenticated("missing authorization metadata: send `authorization: Bearer <API key>`")
	}
	scheme, secret, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(secret) == "" {
		return "", apierr.Unauthenticated("malformed authorization metadata: want `Bearer <API key>`")
	}
	return strings.TrimSpace(secret), nil
}

// Unary is the unary-call interceptor.
func (i *Interceptor) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _, _, err := i.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the streaming-call interceptor. Beyond the checks at open, an authenticated stream is
// counted against its account's cap while it is open, and its key is re-verified every cache TTL
// (see openStreams): once the store refuses the key, the handler's context ends and the stream
// ends with ErrKeyRevoked, whatever the handler returned (WatchEvents returns nil when its
// context ends). Public streams (health Watch, reflection) have no key and are neither.
func (i *Interceptor) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, p, d, err := i.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if d == "" {
			return handler(srv, ss)
		}
		ctx, done, err := i.streams.open(ctx, d, p.AccountID)
		if err != nil {
			return err
		}
		defer done()
		err = handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
		if errors.Is(context.Cause(ctx), ErrKeyRevoked) {
			return ErrKeyRevoked
		}
		return err
	}
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// SendMsg refuses to send once the stream's key has been refused, so a handler that sends a batch
// without looking at its context between messages sends nothing more. It cannot interrupt a send
// already blocked on flow control (a client that stopped reading): that stream ends when the
// client reads again or goes away, and keeps its place under the account's cap until then.
func (w *wrappedStream) SendMsg(m any) error {
	if errors.Is(context.Cause(w.ctx), ErrKeyRevoked) {
		return ErrKeyRevoked
	}
	return w.ServerStream.SendMsg(m)
}

// BearerCredentials sends a key as `authorization: Bearer <key>` on every call of a client
// connection. It does not insist on TLS itself, because the services talk plaintext over loopback
// by default; beyond loopback the services refuse plaintext unless told -insecure-plaintext
// (pkg/tlsfiles).
type BearerCredentials string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b BearerCredentials) RequireTransportSecurity() bool { return false }

// article is "an" before a role that starts with a vowel, "a" otherwise.
func article(r Role) string {
	if strings.ContainsAny(string(r)[:1], "aeiou") {
		return "an"
	}
	return "a"
}
