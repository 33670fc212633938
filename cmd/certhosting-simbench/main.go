// Command certhosting-simbench runs issue 13's proof (internal/sim) at the scale of make bench:
// 10,000 bundles over 3 simulated years by default, with a random seed unless -seed names one,
// and prints the counts: silent expiries and coverage gaps (both must be 0), and the totals. It
// exits non-zero when either count is not 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/certhosting/certhosting/internal/sim"
	"github.com/certhosting/certhosting/services/lifecycle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "certhosting-simbench:", err)
		os.Exit(1)
	}
}

func run() error {
	bundles := flag.Int("bundles", 10_000, "bundles to buy (over the first simulated year)")
	years := flag.Int("years", 3, "simulated years")
	seed := flag.Uint64("seed", 0, "the random seed (0: a random one, printed)")
	step := flag.Duration("step", time.Hour, "how far the fake clock moves between ticks")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "certhosting-simbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := sim.Run(ctx, sim.Config{Dir: dir, Bundles: *bundles, Duration: time.Duration(*years) * lifecycle.Year,
		Seed: *seed, Step: *step})
	r.Print(os.Stdout)
	if err != nil {
		return err
	}
	if r.SilentExpiries != 0 || r.CoverageGaps != 0 {
		return fmt.Errorf("%d silent expiries and %d coverage gaps, want 0 and 0", r.SilentExpiries, r.CoverageGaps)
	}
	return nil
}
