package db

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// In one group, a write that fails (or panics) is rolled back to its savepoint alone and the
// others commit.
func TestGroupRollsBackFailedWritesAlone(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, filepath.Join(t.TempDir(), "g.db"), Options{Migrations: benchSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	// Hold the writer so that the next writes queue up and run as one group.
	release, running := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) }) // so that Close does not wait forever on a failure
	held := make(chan error, 1)
	go func() { held <- d.Write(ctx, func(*Tx) error { close(running); <-release; return nil }) }()
	<-running

	const n = 12
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.Write(ctx, func(tx *Tx) error {
				if _, err := tx.Exec(`INSERT INTO rows (id, payload) VALUES (?, 'x')`, i); err != nil {
					return err
				}
				switch i % 3 {
				case 1:
					return errors.New("refused")
				case 2:
					panic("boom")
				}
				return nil
			})
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(d.w.reqs) < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes queued", len(d.w.reqs))
		}
		time.Sleep(time.Millisecond)
	}
	releaseOnce.Do(func() { close(release) })
	wg.Wait()
	if err := <-held; err != nil {
		t.Fatal(err)
	}

	for i, err := range errs {
		if (err == nil) != (i%3 == 0) {
			t.Errorf("write %d: err %v", i, err)
		}
	}
	var ids []int
	if err := d.Select(ctx, &ids, `SELECT id FROM rows ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 3, 6, 9}
	if len(ids) != len(want) {
		t.Fatalf("rows %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("rows %v, want %v", ids, want)
		}
	}
}
