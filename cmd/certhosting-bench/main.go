// Command certhosting-bench measures end-to-end paid purchases per second through the real service
// pair, against a no-op gRPC baseline measured in the same run on the same machine.
//
// It builds both services (without -race), starts them as processes on loopback (internal/pair)
// on SQLite in WAL mode with synchronous=FULL (their default) in a fresh directory, with the rate
// limit off and logging at warn, and then, per run:
//
//  1. warmup: purchases for -warmup, then waits until all of them are delivered;
//  2. baseline: -concurrency clients call grpc.health.v1.Health/Check on the order service for
//     -duration (the same client connection(s) as the purchases): no-op calls per second;
//  3. purchases: -concurrency clients each loop CreateOrder (dv-single, 3 years, hosted) +
//     PayOrder for -duration; then the command waits until every paid order's bundle exists in
//     the lifecycle service.
//
// A purchase is complete when its bundle exists in the lifecycle service. The figure is
// purchases paid in the window / (time the last of their bundles was delivered − start of the
// window): the backlog the relay still had when the clients stopped is part of the time. The end
// time comes from the services' own timestamps, read through the public API after the run, so
// polling for completion is not on the measured path (see collect.go).
//
// The output is Markdown, to paste into the README.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/internal/pgdb"
)

type config struct {
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	conns       int
	runs        int
	dir         string
	keep        bool
	profileDir  string
	orderArgs   string
	lifeArgs    string
	verbose     bool
	postgres    string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("certhosting-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured phase (the no-op baseline and the purchases)")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "purchases made and delivered before measuring, not counted")
	fs.IntVar(&c.concurrency, "concurrency", 64, "concurrent clients, each with one call in flight")
	fs.IntVar(&c.conns, "conns", 1, "client connections (HTTP/2) the clients share, round-robin")
	fs.IntVar(&c.runs, "runs", 1, "runs, each on a fresh pair of processes and databases")
	fs.StringVar(&c.dir, "dir", "", "parent of the runs' data directories (default: the system temp directory); use a disk, not tmpfs, or fsync costs nothing")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directories (databases and logs) after the run")
	fs.StringVar(&c.profileDir, "profile", "", "write CPU profiles of both services and of this client, taken during the purchase phase, into this directory")
	fs.StringVar(&c.orderArgs, "order-args", "", "extra flags for the order service, space-separated")
	fs.StringVar(&c.lifeArgs, "lifecycle-args", "", "extra flags for the lifecycle service, space-separated")
	fs.BoolVar(&c.verbose, "v", false, "print progress and the services' warnings to stderr")
	fs.StringVar(&c.postgres, "postgres", "", "run the services on PostgreSQL: the URL of any database on the server (each run creates and drops databases of its own); empty: SQLite")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.warmup < 0:
		return c, errors.New("-warmup must not be negative")
	case c.concurrency < 1:
		return c, errors.New("-concurrency must be at least 1")
	case c.conns < 1 || c.conns > c.concurrency:
		return c, errors.New("-conns must be between 1 and -concurrency")
	case c.runs < 1:
		return c, errors.New("-runs must be at least 1")
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "certhosting-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	progress := io.Discard
	if cfg.verbose {
		progress = stderr
	}
	binDir, err := os.MkdirTemp(cfg.dir, "certhosting-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintln(progress, "building the services (without -race)...")
	bins, err := pair.Build(ctx, binDir, false)
	if err != nil {
		return err
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}

	var results []result
	for i := 1; i <= cfg.runs; i++ {
		fmt.Fprintf(progress, "run %d of %d\n", i, cfg.runs)
		r, err := oneRun(ctx, cfg, bins, i, progress)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		results = append(results, r)
	}
	report(stdout, cfg, results)
	return nil
}

// oneRun starts a fresh pair in its own directory and measures baseline and purchases on it.
func oneRun(ctx context.Context, cfg config, bins pair.Binaries, n int, progress io.Writer) (result, error) {
	dir, err := os.MkdirTemp(cfg.dir, "certhosting-bench-")
	if err != nil {
		return result{}, err
	}
	if cfg.keep {
		fmt.Fprintln(progress, "data directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fsType := filesystem(dir)

	opts := pair.Options{
		Dir:      dir,
		LogLevel: "warn",
		// The per-account limiter (2000 calls/s by default) would cap the clients, who all use
		// the demo account; the benchmark measures the services, not the limit.
		OrderArgs:     append([]string{"-rate-limit", "0"}, splitArgs(cfg.orderArgs)...),
		LifecycleArgs: append([]string{"-rate-limit", "0"}, splitArgs(cfg.lifeArgs)...),
	}
	if cfg.verbose {
		opts.Log = progress
	}
	if cfg.postgres != "" {
		dbs, drop, err := pgdb.Fresh(ctx, cfg.postgres, fmt.Sprintf("certhosting_bench%d", n), "order", "lifecycle", "identity", "localca")
		if err != nil {
			return result{}, err
		}
		defer drop()
		opts.Databases = dbs
	}
	var debug debugAddrs
	if cfg.profileDir != "" {
		if debug, err = freeDebugAddrs(); err != nil {
			return result{}, err
		}
		opts.OrderArgs = append(opts.OrderArgs, "-debug-addr", debug.order)
		opts.LifecycleArgs = append(opts.LifecycleArgs, "-debug-addr", debug.lifecycle)
	}
	p, err := pair.Start(ctx, bins, opts)
	if err != nil {
		return result{}, err
	}
	defer p.Stop()

	cl, err := dial(p.OrderAddr, p.LifecycleAddr, p.DemoKey, cfg.conns)
	if err != nil {
		return result{}, err
	}
	defer cl.close()

	cpu := func() cpuSample { return sampleCPU(p.OrderPID(), p.LifecyclePID()) }
	res := result{fs: fsType, loadAvg: loadAvg()}
	if cfg.warmup > 0 {
		fmt.Fprintf(progress, "warmup: purchases for %v\n", cfg.warmup)
		w, err := purchases(ctx, cl, cfg.concurrency, cfg.warmup, fmt.Sprintf("warmup%d", n), cpu)
		if err != nil {
			return result{}, fmt.Errorf("warmup: %w", err)
		}
		if _, err := waitDelivered(ctx, cl, w.done, progress, nil); err != nil {
			return result{}, fmt.Errorf("warmup: %w", err)
		}
	}

	fmt.Fprintf(progress, "baseline: Health/Check for %v\n", cfg.duration)
	if res.noop, err = noops(ctx, cl, cfg.concurrency, cfg.duration, cpu); err != nil {
		return result{}, fmt.Errorf("baseline: %w", err)
	}

	fmt.Fprintf(progress, "purchases for %v\n", cfg.duration)
	stopProfiles, err := startProfiles(ctx, cfg.profileDir, n, debug, cfg.duration)
	if err != nil {
		return result{}, err
	}
	ph, err := purchases(ctx, cl, cfg.concurrency, cfg.duration, fmt.Sprintf("run%d", n), cpu)
	if perr := stopProfiles(); perr != nil {
		fmt.Fprintln(progress, "profiles:", perr)
	}
	if err != nil {
		return result{}, fmt.Errorf("purchases: %w", err)
	}
	fmt.Fprintf(progress, "waiting for %d bundles\n", len(ph.done))
	res.purchase, err = complete(ctx, cl, ph, progress, cpu)
	if err != nil {
		return result{}, err
	}
	if err := p.Stop(); err != nil {
		return result{}, fmt.Errorf("stopping the services: %w", err)
	}
	return res, nil
}

// startProfiles starts CPU profiles of this process and (through -debug-addr) of both services,
// covering the purchase phase. The returned func stops this process's profile and waits for the
// services'.
func startProfiles(ctx context.Context, dir string, run int, debug debugAddrs, d time.Duration) (func() error, error) {
	if dir == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("bench-run%d.pprof", run)))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	errc := make(chan error, 2)
	for name, addr := range map[string]string{"order": debug.order, "lifecycle": debug.lifecycle} {
		go func() {
			errc <- fetchProfile(ctx, addr, d, filepath.Join(dir, fmt.Sprintf("%s-run%d.pprof", name, run)))
		}()
	}
	return func() error {
		pprof.StopCPUProfile()
		return errors.Join(f.Close(), <-errc, <-errc)
	}, nil
}

// filesystem names the filesystem holding dir, because synchronous=FULL means nothing on tmpfs.
func filesystem(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch st.Type {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (fsync is free: not a durable figure)"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("type 0x%x", st.Type)
}

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }
