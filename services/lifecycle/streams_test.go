package lifecycle_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
)

// waitOpen waits until the server counts n open streams (it learns of a client's cancel
// asynchronously) and fails the test if that takes longer than watchTimeout.
func (e *env) waitOpen(n int) {
	e.t.Helper()
	deadline := time.Now().Add(watchTimeout)
	for s, _ := e.authn.OpenStreams(); s != n; s, _ = e.authn.OpenStreams() {
		if time.Now().After(deadline) {
			e.t.Fatalf("open streams = %d after %s, want %d", s, watchTimeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A WatchEvents stream ends with Unauthenticated once its key is revoked and the key cache's TTL
// has passed; another account's stream stays open.
func TestWatchEventsKeyRevoked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.watch(e.a, "", "")
	other := e.watch(e.b, "", "")
	keys, err := e.identity.ListKeys(e.ctx, e.accA)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := e.identity.RevokeKey(e.ctx, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.clk.Advance(time.Minute) // the env's key cache TTL
	_, err = w.stream.Recv()
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != status.Convert(auth.ErrKeyRevoked).Message() {
		t.Errorf("stream of the revoked key ended with %v, want %v", err, auth.ErrKeyRevoked)
	}
	// A stream leaves the registry before its status is sent: the count is exact here.
	if s, _ := e.authn.OpenStreams(); s != 1 {
		t.Errorf("open streams = %d, want 1 (account B's)", s)
	}
	other.cancel()
}

// The stream that would pass the account's cap is refused with ResourceExhausted; once one of the
// account's streams closes, a new one opens. The cap is the account's: B is not affected.
func TestWatchEventsCapPerAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{streamsPerAccount: 2})
	first := e.watch(e.a, "", "")
	e.watch(e.a, "", "")
	e.watch(e.b, "", "")
	ctx, cancel := context.WithTimeout(e.ctx, watchTimeout)
	defer cancel()
	s, err := e.a.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), e.accA) {
		t.Fatalf("third stream of A = %v, want ResourceExhausted naming %s", err, e.accA)
	}
	first.cancel()
	e.waitOpen(2)
	e.watch(e.a, "", "") // fails the test if refused
}

// heap is the memory of live objects and goroutine stacks after a collection, twice: the first
// moves what sync.Pools hold (grpc-go's buffers) to their victim caches, the second frees it. alloc
// is the bytes of live objects plus the stacks in use (a stream's largest cost is its goroutines'
// stacks); inuse adds the free space in the heap spans the objects occupy (fragmentation), which
// the runtime reuses for new objects of the same sizes but cannot return while any object of the
// span lives.
func heap() (alloc, inuse int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc + m.StackInuse), int64(m.HeapInuse + m.StackInuse)
}

// openStreams opens n WatchEvents streams as client c and returns the func that closes them all
// and waits until the server has let them go. (Not env.watch: the t.Cleanup it registers per
// stream would hold each stream's context until the test ends.)
func (e *env) openStreams(c lifecyclev1.LifecycleServiceClient, n int) (closeAll func()) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 10*watchTimeout)
	for i := range n {
		s, err := c.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{})
		if err == nil {
			_, err = s.Header()
		}
		if err != nil {
			cancel()
			e.t.Fatalf("stream %d: %v", i+1, err)
		}
	}
	return func() {
		cancel()
		e.waitOpen(0)
	}
}

// TestWatchEventsMemoryReturns opens 2,000 WatchEvents streams on one server (one client
// connection), closes them, and does it again. It checks that the live heap returns near where it
// was (nothing a stream holds, such as its registry entry, timer, buffers and goroutines, outlives
// it) and that the second round does not leave more heap in use than the first (the memory of
// closed streams is reused, not added to). Bounds are generous, so it fails on a leak, not on
// noise. It runs alone (not parallel), since other tests' allocations would blur the figures.
func TestWatchEventsMemoryReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 streams twice")
	}
	const streams = 2000
	const mib = 1 << 20
	e := newEnv(t)
	e.openStreams(e.a, 50)() // warm up what the first streams allocate once (pools, tables)
	goroutines := runtime.NumGoroutine()
	baseAlloc, baseInuse := heap()

	var peakAlloc, peakInuse, afterAlloc, afterInuse [2]int64
	for round := range 2 {
		closeAll := e.openStreams(e.a, streams)
		peakAlloc[round], peakInuse[round] = heap()
		closeAll()
		// The client's and server's goroutines of a stream end shortly after its handler.
		deadline := time.Now().Add(watchTimeout)
		for runtime.NumGoroutine() > goroutines+10 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		afterAlloc[round], afterInuse[round] = heap()
		t.Logf("round %d: live heap and stacks %.1f MiB before, %.1f MiB with %d streams open (%.1f KiB a stream, client and server), %.1f MiB after they closed; heap in use %.1f, %.1f, %.1f MiB; goroutines %d before, %d after",
			round+1, float64(baseAlloc)/mib, float64(peakAlloc[round])/mib, streams, float64(peakAlloc[round]-baseAlloc)/streams/1024, float64(afterAlloc[round])/mib,
			float64(baseInuse)/mib, float64(peakInuse[round])/mib, float64(afterInuse[round])/mib, goroutines, runtime.NumGoroutine())
	}
	grew := peakAlloc[0] - baseAlloc
	if grew < 4*mib {
		t.Fatalf("%d open streams grew the heap by only %d bytes: the measure does not see them", streams, grew)
	}
	for round := range 2 {
		if left, bound := afterAlloc[round]-baseAlloc, max(grew/10, 4*mib); left > bound {
			t.Errorf("round %d: the live heap after the streams closed is %d bytes above where it was (the streams took %d); want at most %d", round+1, left, grew, bound)
		}
	}
	if more, bound := afterInuse[1]-afterInuse[0], max(grew/10, 4*mib); more > bound {
		t.Errorf("heap in use after the second round is %d bytes above the first's; want at most %d (the first round's memory reused)", more, bound)
	}
}
