package lifecycle_test

import (
	"slices"
	"testing"
	"time"

	"github.com/certhosting/certhosting/services/lifecycle"
)

// TestTickReportsEachSweep: TickerConfig.PhaseDone hears of every sweep of a tick, in the order
// they run, with the time each took (the sweep command's per-sweep report is built on it).
func TestTickReportsEachSweep(t *testing.T) {
	e := newEnv(t)
	var names []string
	ticker := lifecycle.NewTicker(e.cfg, lifecycle.TickerConfig{PhaseDone: func(name string, took time.Duration) {
		if took < 0 {
			t.Errorf("sweep %s took %v", name, took)
		}
		names = append(names, name)
	}})
	if _, err := ticker.Tick(e.ctx, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	want := []string{"expire", "escalate", "renewal_info", "retry", "renew", "submit", "poll", "deployments", "remind"}
	if !slices.Equal(names, want) {
		t.Fatalf("sweeps reported %q, want %q", names, want)
	}
}
