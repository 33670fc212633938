package backoff

import (
	"testing"
	"time"
)

// samples is how many draws each bound is checked on: enough that a wrong jitter range shows.
const samples = 500

func TestDelayBounds(t *testing.T) {
	t.Parallel()
	p := Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
	tests := []struct {
		failures int
		nominal  time.Duration
	}{
		{0, 100 * time.Millisecond}, // treated as the first failure
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{6, 3200 * time.Millisecond},
		{7, 5 * time.Second}, // 6.4s capped
		{50, 5 * time.Second},
		{1 << 20, 5 * time.Second},
	}
	for _, tc := range tests {
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range samples {
			d := p.Delay(tc.failures)
			if d < tc.nominal/2 || d > tc.nominal {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tc.failures, d, tc.nominal/2, tc.nominal)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Jitter: the draws spread over the range rather than sitting on one value.
		if hi-lo < tc.nominal/4 {
			t.Errorf("Delay(%d) drew only within [%v, %v]: no jitter", tc.failures, lo, hi)
		}
	}
}

func TestDelayTinyBase(t *testing.T) {
	t.Parallel()
	p := Policy{Base: 1, Max: 1}
	if d := p.Delay(1); d != 1 {
		t.Errorf("Delay with a 1ns base = %v, want 1ns (no jitter below 2ns)", d)
	}
}

func TestDelayAtLeast(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: 10 * time.Second}
	tests := []struct {
		name       string
		failures   int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"no retry-after", 1, 0, 500 * time.Millisecond, time.Second},
		{"retry-after shorter than backoff", 3, time.Second, 2 * time.Second, 4 * time.Second},
		{"retry-after longer than backoff", 1, 7 * time.Second, 7 * time.Second, 7 * time.Second},
		{"retry-after above Max honoured", 1, 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{"retry-after capped at 4x Max", 1, 24 * time.Hour, 40 * time.Second, 40 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range samples {
				if d := p.DelayAtLeast(tc.failures, tc.retryAfter); d < tc.lo || d > tc.hi {
					t.Fatalf("DelayAtLeast(%d, %v) = %v, want within [%v, %v]", tc.failures, tc.retryAfter, d, tc.lo, tc.hi)
				}
			}
		})
	}
}
