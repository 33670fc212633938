// Command certhosting-sweepbench measures the renewal ticker's sweep against stores of different
// sizes: for each size it seeds a lifecycle database with that many hosted certificates (each the
// current certificate of its own 2-year hosted bundle, whose second instance is NOT_ACTIVATED: the
// store also holds twice as many instance rows, and an application and an issuance per
// certificate), of which -due are at their renewal time, then runs the real
// service binary's one-tick path (`certhosting-lifecycle sweep`) as of that time, and reports the
// sweep's duration, its activations per second and the process's peak resident memory.
//
// The sweep is everything the ticker does at a renewal time: decide each successor, activate the
// next instance and record its automatic application (in compare-and-set transactions), generate
// each application's key, submit it to the local CA, and poll it once (the CA looks the validation
// record up over DNS; the benchmark's DNS server has none, so the applications stay pending, as
// they would while a real CA verifies). The figure that matters is the ratio: the cost of a sweep
// must grow with the certificates due, not with the certificates stored.
//
// With -records the DNS server answers every due bundle's validation record (the command asks the
// local CA for them before the tick, as cmd/certhosting-reissuebench does), so the same tick also
// completes the renewals: the CA finds the record and signs, and the tick stores the issuance,
// makes the next instance HOSTED and writes the event. The command then reports completed
// renewals per second: certificates issued and stored by the tick / the tick's duration.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/internal/benchutil"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "certhosting-sweepbench:", err)
		os.Exit(1)
	}
}

type result struct {
	Stored, Due  int
	Replicas     int // PostgreSQL runs: lifecycle processes sweeping together
	Seed         time.Duration
	Sweep        time.Duration
	Activated    int
	Submitted    int
	Polled       int
	Issued       int
	MaxRSSKB     int64
	DatabaseSize int64
	// Baseline (with -records): the cryptography of one renewal alone on every core, rounds/s,
	// measured right after the sweep (benchutil.RenewalCrypto).
	Baseline float64
	// CPU is the sweep process's user and system CPU time, its start-up included (SQLite runs):
	// steadier than the rate when other work shares the machine.
	CPU time.Duration
	// Phases are the tick's sweeps that took a millisecond or more, as the sweep command
	// reported them.
	Phases []lifecycle.PhaseReport
}

// printPhases prints where a sweep's time went, sweep by sweep: cores busy is the process's CPU
// over the sweep's time; writers busy adds up the database writers' wall time over it (one per
// database; the busy ones are the lifecycle store's and the local CA's, so up to 2.0: a writer
// near 1.0 is what the sweep waits for).
func printPhases(r result) {
	for _, p := range r.Phases {
		fmt.Printf("    %-12s %7.2fs  %.2f cores busy  writers busy %.2f (%d writes in %d groups, %.1f per group)\n",
			p.Name, p.MS/1000, p.CPUMS/p.MS, p.WriterBusyMS/p.MS, p.Writes, p.Groups, float64(p.Writes)/float64(max(p.Groups, 1)))
	}
}

// cpuPer is the sweep's CPU per renewal: per certificate issued when the tick completed renewals
// (-records), per activation when it stopped short of issuance.
func cpuPer(r result) string {
	if r.Issued > 0 {
		return fmt.Sprintf("%.0f µs per issued", float64(r.CPU.Microseconds())/float64(r.Issued))
	}
	return fmt.Sprintf("%.0f µs per activation", float64(r.CPU.Microseconds())/float64(max(r.Activated, 1)))
}

// baselineTime is how long each crypto baseline runs.
const baselineTime = 3 * time.Second

// withBaseline measures r's crypto baseline when the sweep completed renewals.
func withBaseline(r result, records bool) (result, error) {
	if !records {
		return r, nil
	}
	var err error
	r.Baseline, err = benchutil.RenewalCrypto(baselineTime)
	return r, err
}

// header and row print a result table's columns after "sweep time": the rate, and with -records
// the crypto baseline beside it and their ratio.
func header(records bool) (string, string) {
	if !records {
		return "activations/s |", "---:|"
	}
	return "completed renewals/s | baseline: a renewal's cryptography alone, rounds/s | ratio |", "---:|---:|---:|"
}

func row(r result, records bool) string {
	if !records {
		return fmt.Sprintf("%.0f |", float64(r.Activated)/r.Sweep.Seconds())
	}
	rate := float64(r.Issued) / r.Sweep.Seconds()
	return fmt.Sprintf("%.0f | %.0f | %.3f |", rate, r.Baseline, rate/r.Baseline)
}

func run() error {
	storedFlag := flag.String("stored", "10000,1000000", "comma-separated store sizes (hosted certificates) to measure")
	due := flag.Int("due", 10000, "certificates at their renewal time in each store")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed afterwards)")
	profile := flag.Bool("profile", false, "write a CPU profile of each sweep to DIR/<stored>/sweep.pprof (keep -dir to read it)")
	postgres := flag.String("postgres", "", "measure on PostgreSQL instead: the URL of any database on the server (each measurement creates and drops databases of its own)")
	extra := flag.String("lifecycle-args", "", "more flags for the lifecycle service's sweep, space-separated (e.g. \"-ticker-concurrency 128\")")
	records := flag.Bool("records", false, "publish the due bundles' validation records, so the tick completes the renewals (issued and stored) and the command reports completed renewals/s")
	pgRuns := flag.String("pg-runs", "10000x1,10000x2,10000x3,1000000x1", "with -postgres: the measurements, STOREDxREPLICAS (lifecycle processes sweeping together)")
	flag.Parse()
	if *postgres != "" {
		runs, err := parsePGRuns(*pgRuns, *due)
		if err != nil {
			return err
		}
		return runPostgres(*postgres, runs, *due, *dir, *records)
	}

	var sizes []int
	for _, f := range strings.Split(*storedFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < *due {
			return fmt.Errorf("-stored: %q is not a size of at least -due", f)
		}
		sizes = append(sizes, n)
	}
	ctx := context.Background()
	work, bins, dnsSrv, zone, cleanup, err := setup(ctx, *dir)
	if err != nil {
		return err
	}
	defer cleanup()

	fmt.Printf("renewal sweep: %d due certificates, records published: %v, GOMAXPROCS=%d, %d CPUs\n", *due, *records,
		runtime.GOMAXPROCS(0), runtime.NumCPU())
	var results []result
	for _, n := range sizes {
		var publish *dnsserver.MemorySource
		if *records {
			publish = zone
		}
		r, err := measure(ctx, filepath.Join(work, strconv.Itoa(n)), bins.Lifecycle, dnsSrv.Addr(), publish, n, *due, *profile,
			strings.Fields(*extra))
		if err == nil {
			r, err = withBaseline(r, *records)
		}
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Printf("  stored %9d: seeded in %6.1fs (%5.0f MB database); sweep %6.2fs: %d activated (%.0f/s), %d submitted, %d polled, %d issued (%.0f/s); peak RSS %.0f MB; CPU %.2fs (%s)\n",
			r.Stored, r.Seed.Seconds(), float64(r.DatabaseSize)/1e6, r.Sweep.Seconds(), r.Activated,
			float64(r.Activated)/r.Sweep.Seconds(), r.Submitted, r.Polled, r.Issued, float64(r.Issued)/r.Sweep.Seconds(),
			float64(r.MaxRSSKB)/1024, r.CPU.Seconds(), cpuPer(r))
		printPhases(r)
	}
	fmt.Println()
	cols, align := header(*records)
	fmt.Printf("| certificates stored | due | sweep time | %s peak RSS |\n", cols)
	fmt.Printf("|---:|---:|---:|%s---:|\n", align)
	for _, r := range results {
		fmt.Printf("| %d | %d | %.2f s | %s %.0f MB |\n", r.Stored, r.Due, r.Sweep.Seconds(), row(r, *records), float64(r.MaxRSSKB)/1024)
	}
	if len(results) > 1 {
		first, last := results[0], results[len(results)-1]
		fmt.Printf("\nsweep time ratio, %d stored / %d stored: %.2f\n", last.Stored, first.Stored, last.Sweep.Seconds()/first.Sweep.Seconds())
	}
	return nil
}

// setup makes the work directory (dir, or a temporary one removed by cleanup), builds the
// service binaries into it, and starts a DNS server serving zone, empty until -records fills it:
// without records the local CA's lookups get a real (negative) answer, so the applications stay
// pending.
func setup(ctx context.Context, dir string) (work string, bins pair.Binaries, dnsSrv *dnsserver.Server,
	zone *dnsserver.MemorySource, cleanup func(), err error) {
	work = dir
	removeWork := func() {}
	if work == "" {
		if work, err = os.MkdirTemp("", "certhosting-sweepbench-"); err != nil {
			return "", bins, nil, nil, nil, err
		}
		removeWork = func() { os.RemoveAll(work) }
	}
	if bins, err = pair.Build(ctx, filepath.Join(work, "bin"), false); err != nil {
		removeWork()
		return "", bins, nil, nil, nil, err
	}
	zone = dnsserver.NewMemorySource()
	if dnsSrv, err = dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone}); err != nil {
		removeWork()
		return "", bins, nil, nil, nil, err
	}
	return work, bins, dnsSrv, zone, func() { dnsSrv.Close(); removeWork() }, nil
}

// runPostgres measures the sweep on PostgreSQL, with one or more replicas, and prints the table.
func runPostgres(admin string, runs []pgRun, due int, dir string, records bool) error {
	ctx := context.Background()
	work, bins, dnsSrv, zone, cleanup, err := setup(ctx, dir)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("renewal sweep on PostgreSQL: %d due certificates, GOMAXPROCS=%d, %d CPUs\n", due, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var results []result
	for _, run := range runs {
		var publish *dnsserver.MemorySource
		if records {
			publish = zone
		}
		r, err := measurePostgres(ctx, filepath.Join(work, fmt.Sprintf("pg-%d-%d", run.stored, run.replicas)), admin, bins.Lifecycle, dnsSrv.Addr(),
			publish, run, due)
		if err == nil {
			r, err = withBaseline(r, records)
		}
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Printf("  stored %9d, %d replica(s): seeded in %6.1fs (%5.0f MB database); sweep %6.2fs: %d activated (%.0f/s), %d submitted, %d polled, %d issued (%.0f/s); peak RSS %.0f MB\n",
			r.Stored, r.Replicas, r.Seed.Seconds(), float64(r.DatabaseSize)/1e6, r.Sweep.Seconds(), r.Activated,
			float64(r.Activated)/r.Sweep.Seconds(), r.Submitted, r.Polled, r.Issued, float64(r.Issued)/r.Sweep.Seconds(),
			float64(r.MaxRSSKB)/1024)
	}
	fmt.Println()
	cols, align := header(records)
	fmt.Printf("| certificates stored | due | lifecycle replicas | sweep time | %s peak RSS (largest replica) |\n", cols)
	fmt.Printf("|---:|---:|---:|---:|%s---:|\n", align)
	for _, r := range results {
		fmt.Printf("| %d | %d | %d | %.2f s | %s %.0f MB |\n", r.Stored, r.Due, r.Replicas, r.Sweep.Seconds(), row(r, records),
			float64(r.MaxRSSKB)/1024)
	}
	var small, large *result
	for i := range results {
		if results[i].Replicas != 1 {
			continue
		}
		if small == nil || results[i].Stored < small.Stored {
			small = &results[i]
		}
		if large == nil || results[i].Stored > large.Stored {
			large = &results[i]
		}
	}
	if small != nil && large != small {
		fmt.Printf("\nsweep time ratio, %d stored / %d stored (1 replica): %.2f\n", large.Stored, small.Stored, large.Sweep.Seconds()/small.Sweep.Seconds())
	}
	return nil
}

// measure seeds a store of n instances (due of them at their renewal time) and times one sweep.
// With zone, the due bundles' validation records are published there first.
func measure(ctx context.Context, dir, lifecycleBin, resolver string, zone *dnsserver.MemorySource, n, due int, profile bool,
	extra []string) (result, error) {
	r := result{Stored: n, Due: due}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	at := time.Now().UTC().Truncate(time.Second)
	began := time.Now()
	if err := benchseed.SQLite(ctx, filepath.Join(dir, "lifecycle.db"), n, due, at); err != nil {
		return r, fmt.Errorf("seed %d: %w", n, err)
	}
	r.Seed = time.Since(began)
	if fi, err := os.Stat(filepath.Join(dir, "lifecycle.db")); err == nil {
		r.DatabaseSize = fi.Size()
	}
	keyFile, master := filepath.Join(dir, "master.key"), secrets.Generate()
	if err := os.WriteFile(keyFile, []byte(master), 0o600); err != nil {
		return r, err
	}
	if zone != nil {
		published, err := benchseed.PublishRecords(ctx, zone, filepath.Join(dir, "lifecycle.db"), filepath.Join(dir, "localca.db"), master, at)
		if err != nil {
			return r, err
		}
		if published != due {
			return r, fmt.Errorf("published %d records, want one per due certificate (%d)", published, due)
		}
	}
	args := []string{"sweep",
		"-db", filepath.Join(dir, "lifecycle.db"), "-identity-db", filepath.Join(dir, "identity.db"),
		"-master-key-file", keyFile, "-localca-db", filepath.Join(dir, "localca.db"),
		"-localca-resolver", resolver, "-log-level", "warn", "-at", at.Format(time.RFC3339)}
	args = append(args, extra...)
	if profile {
		args = append(args, "-cpuprofile", filepath.Join(dir, "sweep.pprof"))
	}
	cmd := exec.CommandContext(ctx, lifecycleBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("sweep: %v\n%s", err, stderr.String())
	}
	var out struct {
		DurationMS float64 `json:"duration_ms"`
		Stats      struct {
			Activated, Submitted, Polled, Issued, RenewalsStarted int
		} `json:"stats"`
		MaxRSSKB int64                   `json:"max_rss_kb"`
		Phases   []lifecycle.PhaseReport `json:"phases"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return r, fmt.Errorf("sweep output %q: %w", stdout.String(), err)
	}
	if out.Stats.Activated != due || out.Stats.Submitted != due {
		return r, fmt.Errorf("sweep activated %d and submitted %d, want %d each", out.Stats.Activated, out.Stats.Submitted, due)
	}
	if zone != nil && out.Stats.Issued != due {
		return r, fmt.Errorf("sweep issued %d, want every due certificate (%d)", out.Stats.Issued, due)
	}
	r.Sweep = time.Duration(out.DurationMS * float64(time.Millisecond))
	r.Activated, r.Submitted, r.Polled, r.Issued = out.Stats.Activated, out.Stats.Submitted, out.Stats.Polled, out.Stats.Issued
	r.MaxRSSKB, r.Phases = out.MaxRSSKB, out.Phases
	// The kernel's view of the whole process, as a cross-check of what it reported itself.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.MaxRSSKB = max(r.MaxRSSKB, ru.Maxrss)
		r.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}
