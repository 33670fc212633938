// Command certhosting-reissuebench measures the mass re-issue drill (OperationsService): how fast
// the service replaces every hosted certificate after a CA incident, and what the drill costs the
// customers buying meanwhile.
//
// It builds both services (without -race) and, in a fresh directory, seeds the lifecycle database
// with -n hosted certificates (internal/benchseed: each the HOSTED first instance of a 2-year
// hosted bundle, none due for renewal), publishes every bundle's validation record on a DNS server
// of its own (the local CA's records are derived from its secret, so the command opens the CA's
// database first and asks it), and starts the pair on SQLite with the local CA. Then:
//
//  1. baseline: -clients clients call CreateOrder in a loop for -baseline: its latency without the
//     drill;
//  2. drill: a support engineer's CreateReissueOperation selects every certificate issued before
//     now, at -rate per second; the clients keep calling CreateOrder until every certificate has
//     been replaced (a new issuance stored for it), which the command reads from the lifecycle
//     database (read-only, beside the service).
//
// A re-issue is complete when the new certificate is stored: key generated and sealed, application
// submitted to the CA, the CA's DNS lookup answered, certificate issued, issuance stored, instance
// updated, event written. The time for all is from the CreateReissueOperation call to the moment
// the command sees the last new issuance stored (it looks every 250 ms, so the figure errs by at
// most that much on the slow side). An issuance's create_time is the time of the ticker sweep that
// stored it, which started earlier, so it cannot mark the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/internal/benchutil"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "certhosting-reissuebench:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 100000, "hosted certificates to seed and re-issue")
	rate := flag.Float64("rate", 10000, "the operation's rate_per_second (at most 10,000)")
	clients := flag.Int("clients", 8, "concurrent CreateOrder clients during the baseline and the drill")
	baseline := flag.Duration("baseline", 10*time.Second, "length of the CreateOrder baseline without the drill")
	timeout := flag.Duration("timeout", 60*time.Minute, "give up when the drill has not finished after this long")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed afterwards); use a disk, not tmpfs")
	extra := flag.String("lifecycle-args", "", "more flags for the lifecycle service, space-separated (e.g. \"-debug-addr 127.0.0.1:6060\" to profile it)")
	flag.Parse()
	ctx := context.Background()

	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "certhosting-reissuebench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	bins, err := pair.Build(ctx, filepath.Join(work, "bin"), false)
	if err != nil {
		return err
	}
	runDir := filepath.Join(work, "run")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return err
	}
	fmt.Printf("mass re-issue drill: %d hosted certificates, local CA, SQLite, rate %.0f/s, %d CreateOrder clients, GOMAXPROCS=%d, %d CPUs\n",
		*n, *rate, *clients, runtime.GOMAXPROCS(0), runtime.NumCPU())

	began := time.Now()
	at := time.Now().UTC().Truncate(time.Second)
	lifecycleDB := filepath.Join(runDir, "lifecycle.db")
	if err := benchseed.SQLite(ctx, lifecycleDB, *n, 0, at); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	// The pair's lifecycle service seals its keys with this master key (it keeps an existing file).
	master := secrets.Generate()
	if err := os.WriteFile(filepath.Join(runDir, "lifecycle-master.key"), []byte(master), 0o600); err != nil {
		return err
	}
	zone := dnsserver.NewMemorySource()
	records, err := benchseed.PublishRecords(ctx, zone, lifecycleDB, filepath.Join(runDir, "localca.db"), master,
		at.AddDate(10, 0, 0))
	if err != nil {
		return err
	}
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		return err
	}
	defer dnsSrv.Close()
	fmt.Printf("  seeded %d certificates and published %d records in %.1fs\n", *n, records, time.Since(began).Seconds())

	p, err := pair.New(ctx, bins, pair.Options{Dir: runDir, LogLevel: "warn", StartTimeout: 10 * time.Minute,
		OrderArgs:     []string{"-rate-limit", "0"},
		LifecycleArgs: append([]string{"-rate-limit", "0", "-localca-resolver", dnsSrv.Addr()}, strings.Fields(*extra)...)})
	if err != nil {
		return err
	}
	if err := p.StartServices(ctx); err != nil {
		return fmt.Errorf("%w\n%s", err, p.Logs())
	}
	defer p.Stop()
	staff, err := p.Admin(ctx, "create-account", "-name", "operators")
	if err != nil {
		return err
	}
	supportKey, err := p.Admin(ctx, "create-key", "-account", strings.TrimSpace(staff), "-role", "support", "-name", "alice")
	if err != nil {
		return err
	}
	orderConn, err := dial(p.OrderAddr, p.DemoKey)
	if err != nil {
		return err
	}
	defer orderConn.Close()
	opsConn, err := dial(p.LifecycleAddr, strings.TrimSpace(supportKey))
	if err != nil {
		return err
	}
	defer opsConn.Close()
	orders := orderv1.NewOrderServiceClient(orderConn)
	ops := lifecyclev1.NewOperationsServiceClient(opsConn)

	// 1. The baseline.
	base, err := load(ctx, orders, *clients, func(stop <-chan struct{}) { time.Sleep(*baseline) })
	if err != nil {
		return err
	}

	// 2. The drill, with the same load beside it.
	ro, err := sqlx.Open("sqlite3", "file:"+lifecycleDB+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer ro.Close()
	// Issuances are only ever inserted, and only re-issues insert them during the drill (the
	// CreateOrder load makes bundles, not certificates), so the new ones are the rowids past the
	// seeded ones: a lookup at the end of the table's b-tree. (Counting rows by create_time scanned
	// the whole table, chains and all, four times a second, and took the CPU the drill was
	// measured on.)
	var seeded int64
	if err := ro.QueryRowx(`SELECT MAX(rowid) FROM issuances`).Scan(&seeded); err != nil {
		return err
	}
	var drillStart time.Time
	var finished time.Time
	var replaced int64
	var opName string
	var drillErr error
	during, err := load(ctx, orders, *clients, func(stop <-chan struct{}) {
		drillStart = time.Now()
		resp, err := ops.CreateReissueOperation(ctx, &lifecyclev1.CreateReissueOperationRequest{RequestId: "bench-drill",
			Selector: &lifecyclev1.ReissueSelector{IssuedBefore: timestamppb.New(drillStart)}, RatePerSecond: *rate})
		if err != nil {
			drillErr = err
			return
		}
		opName = resp.GetOperation().GetName()
		if m := resp.GetOperation().GetProgress().GetMatched(); m != int64(*n) {
			drillErr = fmt.Errorf("the operation matched %d certificates, want %d", m, *n)
			return
		}
		deadline := drillStart.Add(*timeout)
		lastReport := time.Now()
		for {
			time.Sleep(250 * time.Millisecond)
			var last int64
			if err := ro.QueryRowx(`SELECT MAX(rowid) FROM issuances`).Scan(&last); err != nil {
				drillErr = err
				return
			}
			replaced = last - seeded
			if replaced >= int64(*n) {
				finished = time.Now()
				return
			}
			if time.Now().After(deadline) {
				drillErr = fmt.Errorf("after %s only %d of %d certificates were replaced", *timeout, replaced, *n)
				return
			}
			if time.Since(lastReport) > 10*time.Second {
				fmt.Printf("  … %d replaced after %.0fs\n", replaced, time.Since(drillStart).Seconds())
				lastReport = time.Now()
			}
		}
	})
	if err != nil {
		return err
	}
	if drillErr != nil {
		return fmt.Errorf("drill: %w\n%s", drillErr, benchutil.Tail(p.Logs(), 40))
	}
	op, err := ops.GetOperation(ctx, &lifecyclev1.GetOperationRequest{Name: opName})
	if err != nil {
		return err
	}
	took := finished.Sub(drillStart)
	fmt.Printf("  operation %s: %s, %d started, %d skipped\n", opName, op.GetOperation().GetState(),
		op.GetOperation().GetProgress().GetStarted(), op.GetOperation().GetProgress().GetSkipped())
	fmt.Println()
	fmt.Println("| hosted certificates re-issued | time for all | completed re-issues/s | CreateOrder/s, p50, p99 without the drill | CreateOrder/s, p50, p99 during the drill |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %.1f s | %.0f | %.0f/s, %.1f ms, %.1f ms | %.0f/s, %.1f ms, %.1f ms |\n", replaced, took.Seconds(), float64(replaced)/took.Seconds(),
		base.rate(), ms(base.quantile(0.50)), ms(base.quantile(0.99)), during.rate(), ms(during.quantile(0.50)), ms(during.quantile(0.99)))
	return nil
}

func dial(addr, key string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.BearerCredentials(key)))
}

// latencies are CreateOrder calls' durations over a window.
type latencies struct {
	d      []time.Duration
	window time.Duration
}

func (l latencies) rate() float64 { return float64(len(l.d)) / l.window.Seconds() }

func (l latencies) quantile(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	return l.d[min(len(l.d)-1, int(q*float64(len(l.d))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// load runs clients calling CreateOrder in a loop while during runs, and returns their latencies.
func load(ctx context.Context, orders orderv1.OrderServiceClient, clients int, during func(stop <-chan struct{})) (latencies, error) {
	stop := make(chan struct{})
	var mu sync.Mutex
	var all []time.Duration
	var failed atomic.Value
	var seq atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				select {
				case <-stop:
					mu.Lock()
					all = append(all, mine...)
					mu.Unlock()
					return
				default:
				}
				t := time.Now()
				_, err := orders.CreateOrder(ctx, &orderv1.CreateOrderRequest{RequestId: fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), c, seq.Add(1)),
					ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 3, Hosting: true})
				if err != nil {
					failed.Store(err)
				}
				mine = append(mine, time.Since(t))
			}
		}()
	}
	start := time.Now()
	during(stop)
	window := time.Since(start)
	close(stop)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return latencies{}, fmt.Errorf("CreateOrder: %w", err)
	}
	slices.Sort(all)
	return latencies{d: all, window: window}, nil
}
