package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestCARetryFlags: the CA retry backoff defaults to the ticker's (5 s doubling to 1 h), can be
// shortened (tests, demos), and must make sense.
func TestCARetryFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		base, max time.Duration
		err       string
	}{
		{"defaults", nil, 5 * time.Second, time.Hour, ""},
		{"shortened", []string{"-ca-retry-base", "200ms", "-ca-retry-max", "1s"}, 200 * time.Millisecond, time.Second, ""},
		{"zero base", []string{"-ca-retry-base", "0s"}, 0, 0, "0 < base <= max"},
		{"max below base", []string{"-ca-retry-base", "10s", "-ca-retry-max", "1s"}, 0, 0, "0 < base <= max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("parseFlags(%q) = %v, want an error saying %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil || c.caRetryBase != tc.base || c.caRetryMax != tc.max {
				t.Errorf("parseFlags(%q) = base %v, max %v, %v; want %v, %v", tc.args, c.caRetryBase, c.caRetryMax, err, tc.base, tc.max)
			}
		})
	}
}
