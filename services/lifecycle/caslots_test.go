package lifecycle

import (
	"context"
	"testing"

	"github.com/certhosting/certhosting/pkg/ca"
)

// remoteCA and localCA are CA clients outside and inside the process; caSlots only looks at
// whether they implement ca.InProcess.
type remoteCA struct{ ca.Client }

type localCA struct{ ca.Client }

func (localCA) InProcess() {}

// TestCASlots: calls to a CA outside the process wait for one of its CACalls slots, each CA has
// slots of its own, and a CA in the process needs none.
func TestCASlots(t *testing.T) {
	l := caSlots{size: 2, slots: map[string]chan struct{}{}}
	ctx := context.Background()
	var releases []func()
	for i := range 2 {
		release, err := l.acquire(ctx, "acme", remoteCA{})
		if err != nil {
			t.Fatalf("call %d to acme: %v, want a slot", i+1, err)
		}
		releases = append(releases, release)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.acquire(done, "acme", remoteCA{}); err == nil {
		t.Fatal("third call to acme got a slot with both taken, want it to wait (here: ctx's error)")
	}
	if release, err := l.acquire(ctx, "plugin", remoteCA{}); err != nil {
		t.Fatalf("call to another CA: %v, want a slot of its own", err)
	} else {
		release()
	}
	for i := range 100 {
		if _, err := l.acquire(done, "local", localCA{}); err != nil {
			t.Fatalf("call %d to the in-process CA: %v, want no bound", i+1, err)
		}
	}
	releases[0]()
	if _, err := l.acquire(ctx, "acme", remoteCA{}); err != nil {
		t.Fatalf("call to acme after a release: %v, want the freed slot", err)
	}
}
