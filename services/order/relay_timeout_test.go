package order

import (
	"testing"
	"time"
)

func TestBatchTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{1, 5 * time.Second}, {256, 5 * time.Second}, {257, 10 * time.Second}, {1000, 20 * time.Second}} {
		if got := batchTimeout(5*time.Second, tc.n); got != tc.want {
			t.Errorf("batchTimeout(5s, %d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
