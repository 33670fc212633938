package db

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// WriterTotals counts the groups a writer ran, the writes in them and the time it spent on them.
// Other tests' writers add to the same totals meanwhile, so the checks are lower bounds.
func TestWriterTotals(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"), Options{Migrations: benchSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	before := WriterTotals()
	// Hold the writer for a while, so that the writes below queue up and run as one group.
	const hold = 20 * time.Millisecond
	release, running := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() { held <- d.Write(ctx, func(*Tx) error { close(running); <-release; return nil }) }()
	<-running
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = d.Write(ctx, func(tx *Tx) error {
				_, err := tx.Exec(`INSERT INTO rows (id, payload) VALUES (?, 'x')`, i)
				return err
			})
		})
	}
	for len(d.w.reqs) < n { // all n queued behind the held write
		time.Sleep(time.Millisecond)
	}
	time.Sleep(hold)
	close(release)
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}

	got := WriterTotals().Sub(before)
	if got.Writes < n+1 || got.Groups < 2 || got.Busy < hold {
		t.Fatalf("totals grew by %+v, want at least %d writes in 2 groups and %v busy", got, n+1, hold)
	}
}
