package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
)

// Against the lifecycle binary: an account's WatchEvents streams are capped
// (-max-streams-per-account), and a key revoked with the admin command ends its open streams
// with Unauthenticated within about the key cache's TTL (-auth-cache-ttl, 2 s by default).
func TestStreamsOfRevokedKeyEnd(t *testing.T) {
	t.Parallel()
	e := startWith(t, pair.Options{Dir: t.TempDir(), LifecycleArgs: []string{"-max-streams-per-account", "2"}})
	c := e.newCustomer(t, "streams")
	cl := connect(t, e.Pair, c.key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	open := func() (lifecyclev1.LifecycleService_WatchEventsClient, error) {
		s, err := cl.lifecycle.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{})
		if err != nil {
			return nil, err
		}
		if md, err := s.Header(); err == nil && len(md.Get("certhosting-watch-start")) == 1 {
			return s, nil
		}
		_, err = s.Recv()
		return nil, err
	}
	var streams []lifecyclev1.LifecycleService_WatchEventsClient
	for range 2 {
		s, err := open()
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	_, err := open()
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), c.account) {
		t.Errorf("third stream = %v, want ResourceExhausted naming %s", err, c.account)
	}

	e.admin(t, "revoke-key", "-key", c.keyID)
	revoked := time.Now()
	for i, s := range streams {
		_, err := s.Recv()
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "API key revoked or expired" {
			t.Errorf("stream %d ended with %v, want Unauthenticated: API key revoked or expired", i+1, err)
		}
	}
	t.Logf("streams of the revoked key ended %v after revoke-key returned", time.Since(revoked).Round(time.Millisecond))
}
