package dnscheck_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
	"github.com/certhosting/certhosting/pkg/db"
)

// TestObserve: the verdict clock counts only the time between answered polls; a failed poll ends
// the stretch, and the time until the next answered poll does not count.
func TestObserve(t *testing.T) {
	t.Parallel()
	migrations := fstest.MapFS{"00001_apps.sql": {Data: []byte(`-- +goose Up
CREATE TABLE apps (ref TEXT PRIMARY KEY, absent_micros BIGINT NOT NULL DEFAULT 0, absent_since BIGINT,
	lookup_failures INTEGER NOT NULL DEFAULT 0);
INSERT INTO apps (ref) VALUES ('a');
`)}}
	d, err := db.Open(t.Context(), filepath.Join(t.TempDir(), "clock.db"), db.Options{Migrations: migrations})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		at       time.Duration // after t0
		answered bool
		want     dnscheck.Clock
	}{
		{0, true, dnscheck.Clock{}}, // the first answer starts a stretch
		{10 * time.Minute, true, dnscheck.Clock{AbsentFor: 10 * time.Minute}},
		{20 * time.Minute, false, dnscheck.Clock{AbsentFor: 10 * time.Minute, Failures: 1}}, // an outage begins
		{3 * time.Hour, false, dnscheck.Clock{AbsentFor: 10 * time.Minute, Failures: 2}},    // and lasts hours
		{4 * time.Hour, true, dnscheck.Clock{AbsentFor: 10 * time.Minute}},                  // answers again: a new stretch
		{4*time.Hour + 5*time.Minute, true, dnscheck.Clock{AbsentFor: 15 * time.Minute}},
		{4*time.Hour + 4*time.Minute, true, dnscheck.Clock{AbsentFor: 15 * time.Minute}}, // a poll from a clock behind adds nothing
		{4*time.Hour + 9*time.Minute, true, dnscheck.Clock{AbsentFor: 20 * time.Minute}},
	}
	for i, s := range steps {
		got, err := dnscheck.Observe(t.Context(), d, "apps", "a", s.answered, t0.Add(s.at))
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want {
			t.Errorf("step %d (%v, answered %v): clock %+v, want %+v", i, s.at, s.answered, got, s.want)
		}
	}
}

// TestNext: how soon an application is polled again.
func TestNext(t *testing.T) {
	t.Parallel()
	const recheck, timeout = 10 * time.Second, time.Hour
	for _, tc := range []struct {
		name  string
		clock dnscheck.Clock
		want  time.Duration
	}{
		{"answered, far from the verdict", dnscheck.Clock{AbsentFor: time.Minute}, recheck},
		{"answered, 4 s before the verdict", dnscheck.Clock{AbsentFor: timeout - 4*time.Second}, 4 * time.Second},
		{"answered, at the verdict: at least a second", dnscheck.Clock{AbsentFor: timeout}, time.Second},
		{"one failure: half the recheck", dnscheck.Clock{Failures: 1}, 5 * time.Second},
		{"three failures: doubling", dnscheck.Clock{Failures: 3}, 20 * time.Second},
		{"many failures: capped at 5 minutes", dnscheck.Clock{Failures: 40}, 5 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.clock.Next(recheck, timeout); got != tc.want {
				t.Errorf("Next = %v, want %v", got, tc.want)
			}
		})
	}
	// With a short timeout the failures' backoff stays within a quarter of it, so a resolver back
	// from an outage is asked again soon.
	if got := (dnscheck.Clock{Failures: 10}).Next(time.Second, 8*time.Second); got != 2*time.Second {
		t.Errorf("short timeout, many failures: Next = %v, want 2s", got)
	}
}

// logBuffer is a slog handler's output, safe to read while written.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// TestFailureLog: failing lookups are logged at WARN at most once a minute, with how many
// applications they hold up, and the recovery once.
func TestFailureLog(t *testing.T) {
	t.Parallel()
	var out logBuffer
	clk := clockwork.NewFakeClock()
	f := &dnscheck.FailureLog{Log: slog.New(slog.NewTextHandler(&out, nil)), Clock: clk, What: "TXT", Resolver: "127.0.0.1:53"}
	errDown := &testErr{"connection refused"}
	for range 5 {
		for _, ref := range []string{"a", "b", "c"} {
			f.Failed(ref, errDown)
		}
		clk.Advance(10 * time.Second)
	}
	if lines := out.lines(); len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "applications_held=1") {
		t.Fatalf("after 50 s of failures: %q, want one WARN line (the first, when one application was held)", lines)
	}
	clk.Advance(20 * time.Second)
	f.Failed("a", errDown)
	lines := out.lines()
	if len(lines) != 2 || !strings.Contains(lines[1], "applications_held=3") || !strings.Contains(lines[1], "connection refused") {
		t.Fatalf("a minute later: %q, want a second WARN line holding 3 applications", lines)
	}
	if f.Held() != 3 {
		t.Errorf("Held = %d, want 3", f.Held())
	}
	f.Answered("a")
	f.Answered("b")
	if got := len(out.lines()); got != 2 {
		t.Errorf("recovery logged while an application is still held: %q", out.lines())
	}
	f.Answered("c")
	if lines := out.lines(); len(lines) != 3 || !strings.Contains(lines[2], "level=INFO") || !strings.Contains(lines[2], "answer again") {
		t.Errorf("after every application got answers: %q, want one INFO line", lines)
	}
	// An application that stops being polled (decided elsewhere) is forgotten after two intervals.
	f.Failed("d", errDown)
	clk.Advance(3 * time.Minute)
	if f.Held() != 0 {
		t.Errorf("Held = %d three minutes after the last failure, want 0", f.Held())
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }
