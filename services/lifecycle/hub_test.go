package lifecycle

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// TestEventHub: the hub reads each commit's events once, wakes only the streams that watch the
// accounts or bundles that got events, serves a cursor inside its window from memory, sends a cursor older than the
// window to the store, moves a quiet bundle's cursor to the window's tail, and stops its reader
// with the last stream.
func TestEventHub(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "lifecycle.db"), db.Options{Migrations: store.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h := NewEventHub()
	h.window = 4
	st := store.New(d, h.Notify)
	h.attach(st, slog.New(slog.DiscardHandler))
	write := func(account, bundle string, n int) int64 {
		t.Helper()
		if err := st.Write(ctx, 1, func(tx *store.Tx) error {
			for range n {
				if err := tx.Event(store.Event{AccountID: account, BundleID: bundle, CertificateID: "crt", Type: "test"}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		last, err := st.LastEventID(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return last
	}
	// woken waits for a stream's wake; the timeout only bounds a failing test.
	woken := func(s *eventSub) {
		t.Helper()
		select {
		case <-s.wake:
		case <-time.After(10 * time.Second):
			t.Fatal("stream not woken")
		}
	}
	quiet := func(s *eventSub, name string) {
		t.Helper()
		h.mu.Lock() // the append that woke the other stream has finished
		h.mu.Unlock()
		select {
		case <-s.wake:
			t.Fatalf("stream of %s woken by events of another account or bundle", name)
		default:
		}
	}

	start := write("acc_a", "bdl_1", 2) // before any stream: not in the window
	a, err := h.subscribe(ctx, "acc_a", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.subscribe(ctx, "acc_b", "")
	if err != nil {
		t.Fatal(err)
	}
	b1, err := h.subscribe(ctx, "acc_a", "bdl_1")
	if err != nil {
		t.Fatal(err)
	}
	b2, err := h.subscribe(ctx, "acc_a", "bdl_2")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := h.after("acc_a", "", start-2, 10); ok {
		t.Error("a cursor before the reader started was served from the window")
	}

	last := write("acc_a", "bdl_1", 3)
	woken(a)
	woken(b1)
	quiet(b, "acc_b")
	quiet(b2, "bdl_2")

	cases := []struct {
		name     string
		account  string
		bundle   string
		cursor   int64
		limit    int
		wantN    int
		wantUpTo int64
		wantOK   bool
	}{
		{"from the window's start", "acc_a", "", start, 10, 3, last, true},
		{"limited", "acc_a", "", start, 2, 2, start + 2, true},
		{"caught up", "acc_a", "", last, 10, 0, last, true},
		{"another account", "acc_b", "", start, 10, 0, last, true},
		{"quiet bundle moves to the tail", "acc_a", "bdl_2", start, 10, 0, last, true},
		{"before the window", "acc_a", "", start - 1, 10, 0, start - 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			es, upTo, ok := h.after(tc.account, tc.bundle, tc.cursor, tc.limit)
			if len(es) != tc.wantN || upTo != tc.wantUpTo || ok != tc.wantOK {
				t.Errorf("after(%s, %q, %d, %d) = %d events, up to %d, %v; want %d, %d, %v",
					tc.account, tc.bundle, tc.cursor, tc.limit, len(es), upTo, ok, tc.wantN, tc.wantUpTo, tc.wantOK)
			}
			for i, e := range es {
				if want := tc.cursor + int64(i) + 1; e.ID != want || e.AccountID != tc.account {
					t.Errorf("event %d = %d of %s, want %d of %s", i, e.ID, e.AccountID, want, tc.account)
				}
			}
		})
	}

	// Five more of acc_b: the window keeps the newest four, so acc_a's cursor falls out of it.
	last = write("acc_b", "bdl_3", 5)
	woken(b)
	quiet(a, "acc_a")
	if _, _, ok := h.after("acc_a", "", start+3, 10); ok {
		t.Error("a cursor behind the window was served from it")
	}
	if es, upTo, ok := h.after("acc_b", "", last-4, 10); !ok || len(es) != 4 || upTo != last {
		t.Errorf("the window's four events: %d events up to %d, %v", len(es), upTo, ok)
	}

	for _, s := range []*eventSub{a, b, b1, b2} {
		h.unsubscribe(s)
	}
	h.mu.Lock()
	running, kept := h.cancel != nil, len(h.order)
	h.mu.Unlock()
	if running || kept != 0 {
		t.Errorf("after the last stream: reader running %v, %d events kept", running, kept)
	}
}
