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
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle/store"
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
	MaxRSSKB     int64
	DatabaseSize int64
}

func run() error {
	storedFlag := flag.String("stored", "10000,1000000", "comma-separated store sizes (hosted certificates) to measure")
	due := flag.Int("due", 10000, "certificates at their renewal time in each store")
	dir := flag.String("dir", "", "work directory (default: a temporary one, removed afterwards)")
	profile := flag.Bool("profile", false, "write a CPU profile of each sweep to DIR/<stored>/sweep.pprof (keep -dir to read it)")
	postgres := flag.String("postgres", "", "measure on PostgreSQL instead: the URL of any database on the server (each measurement creates and drops databases of its own)")
	pgRuns := flag.String("pg-runs", "10000x1,10000x2,10000x3,1000000x1", "with -postgres: the measurements, STOREDxREPLICAS (lifecycle processes sweeping together)")
	flag.Parse()
	if *postgres != "" {
		runs, err := parsePGRuns(*pgRuns, *due)
		if err != nil {
			return err
		}
		return runPostgres(*postgres, runs, *due, *dir)
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
	work, bins, dnsSrv, cleanup, err := setup(ctx, *dir)
	if err != nil {
		return err
	}
	defer cleanup()

	fmt.Printf("renewal sweep: %d due certificates, GOMAXPROCS=%d, %d CPUs\n", *due, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var results []result
	for _, n := range sizes {
		r, err := measure(ctx, filepath.Join(work, strconv.Itoa(n)), bins.Lifecycle, dnsSrv.Addr(), n, *due, *profile)
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Printf("  stored %9d: seeded in %6.1fs (%5.0f MB database); sweep %6.2fs: %d activated (%.0f/s), %d submitted, %d polled; peak RSS %.0f MB\n",
			r.Stored, r.Seed.Seconds(), float64(r.DatabaseSize)/1e6, r.Sweep.Seconds(), r.Activated,
			float64(r.Activated)/r.Sweep.Seconds(), r.Submitted, r.Polled, float64(r.MaxRSSKB)/1024)
	}
	fmt.Println()
	fmt.Println("| certificates stored | due | sweep time | activations/s | peak RSS |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %d | %d | %.2f s | %.0f | %.0f MB |\n", r.Stored, r.Due, r.Sweep.Seconds(),
			float64(r.Activated)/r.Sweep.Seconds(), float64(r.MaxRSSKB)/1024)
	}
	if len(results) > 1 {
		first, last := results[0], results[len(results)-1]
		fmt.Printf("\nsweep time ratio, %d stored / %d stored: %.2f\n", last.Stored, first.Stored, last.Sweep.Seconds()/first.Sweep.Seconds())
	}
	return nil
}

// setup makes the work directory (dir, or a temporary one removed by cleanup), builds the
// service binaries into it, and starts a DNS server with no records: the local CA's lookups get
// a real (negative) answer, so the applications stay pending.
func setup(ctx context.Context, dir string) (work string, bins pair.Binaries, dnsSrv *dnsserver.Server, cleanup func(), err error) {
	work = dir
	removeWork := func() {}
	if work == "" {
		if work, err = os.MkdirTemp("", "certhosting-sweepbench-"); err != nil {
			return "", bins, nil, nil, err
		}
		removeWork = func() { os.RemoveAll(work) }
	}
	if bins, err = pair.Build(ctx, filepath.Join(work, "bin"), false); err != nil {
		removeWork()
		return "", bins, nil, nil, err
	}
	if dnsSrv, err = dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: dnsserver.NewMemorySource()}); err != nil {
		removeWork()
		return "", bins, nil, nil, err
	}
	return work, bins, dnsSrv, func() { dnsSrv.Close(); removeWork() }, nil
}

// seedParams are what every seeded bundle shares: the account, the first issuance's validity
// (issued 335 days before at, expiring 30 days after it) and a chain to store.
func seedParams(at time.Time) (account, chain string, t0, notAfter time.Time, err error) {
	chain, err = dummyChain(at)
	t0 = at.Add(-335 * 24 * time.Hour)
	return ids.New(ids.Account, at), chain, t0, t0.Add(365 * 24 * time.Hour), err
}

// runPostgres measures the sweep on PostgreSQL, with one or more replicas, and prints the table.
func runPostgres(admin string, runs []pgRun, due int, dir string) error {
	ctx := context.Background()
	work, bins, dnsSrv, cleanup, err := setup(ctx, dir)
	if err != nil {
		return err
	}
	defer cleanup()
	fmt.Printf("renewal sweep on PostgreSQL: %d due certificates, GOMAXPROCS=%d, %d CPUs\n", due, runtime.GOMAXPROCS(0), runtime.NumCPU())
	var results []result
	for _, run := range runs {
		r, err := measurePostgres(ctx, filepath.Join(work, fmt.Sprintf("pg-%d-%d", run.stored, run.replicas)), admin, bins.Lifecycle, dnsSrv.Addr(), run, due)
		if err != nil {
			return err
		}
		results = append(results, r)
		fmt.Printf("  stored %9d, %d replica(s): seeded in %6.1fs (%5.0f MB database); sweep %6.2fs: %d activated (%.0f/s), %d submitted, %d polled; peak RSS %.0f MB\n",
			r.Stored, r.Replicas, r.Seed.Seconds(), float64(r.DatabaseSize)/1e6, r.Sweep.Seconds(), r.Activated,
			float64(r.Activated)/r.Sweep.Seconds(), r.Submitted, r.Polled, float64(r.MaxRSSKB)/1024)
	}
	fmt.Println()
	fmt.Println("| certificates stored | due | lifecycle replicas | sweep time | activations/s | peak RSS (largest replica) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %d | %d | %d | %.2f s | %.0f | %.0f MB |\n", r.Stored, r.Due, r.Replicas, r.Sweep.Seconds(),
			float64(r.Activated)/r.Sweep.Seconds(), float64(r.MaxRSSKB)/1024)
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
func measure(ctx context.Context, dir, lifecycleBin, resolver string, n, due int, profile bool) (result, error) {
	r := result{Stored: n, Due: due}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	at := time.Now().UTC().Truncate(time.Second)
	began := time.Now()
	if err := seed(ctx, filepath.Join(dir, "lifecycle.db"), n, due, at); err != nil {
		return r, fmt.Errorf("seed %d: %w", n, err)
	}
	r.Seed = time.Since(began)
	if fi, err := os.Stat(filepath.Join(dir, "lifecycle.db")); err == nil {
		r.DatabaseSize = fi.Size()
	}
	keyFile := filepath.Join(dir, "master.key")
	if err := os.WriteFile(keyFile, []byte(secrets.Generate()), 0o600); err != nil {
		return r, err
	}
	args := []string{"sweep",
		"-db", filepath.Join(dir, "lifecycle.db"), "-identity-db", filepath.Join(dir, "identity.db"),
		"-master-key-file", keyFile, "-localca-db", filepath.Join(dir, "localca.db"),
		"-localca-resolver", resolver, "-log-level", "warn", "-at", at.Format(time.RFC3339)}
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
			Activated, Submitted, Polled, RenewalsStarted int
		} `json:"stats"`
		MaxRSSKB int64 `json:"max_rss_kb"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return r, fmt.Errorf("sweep output %q: %w", stdout.String(), err)
	}
	if out.Stats.Activated != due || out.Stats.Submitted != due {
		return r, fmt.Errorf("sweep activated %d and submitted %d, want %d each", out.Stats.Activated, out.Stats.Submitted, due)
	}
	r.Sweep = time.Duration(out.DurationMS * float64(time.Millisecond))
	r.Activated, r.Submitted, r.Polled = out.Stats.Activated, out.Stats.Submitted, out.Stats.Polled
	r.MaxRSSKB = out.MaxRSSKB
	// The kernel's view of the whole process, as a cross-check of what it reported itself.
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > r.MaxRSSKB {
		r.MaxRSSKB = ru.Maxrss
	}
	return r, nil
}

// seed writes n two-year hosted bundles whose first instance is HOSTED with a certificate issued
// 335 days before at, expiring 30 days after it: renewing it activates instance 2. The first `due`
// bundles are at their renewal time; the others renew over the next 300 days.
func seed(ctx context.Context, path string, n, due int, at time.Time) error {
	d, err := db.Open(ctx, path, db.Options{Migrations: store.Migrations(), MaxBatch: 1})
	if err != nil {
		return err
	}
	defer d.Close()
	account, chain, t0, notAfter, err := seedParams(at)
	if err != nil {
		return err
	}
	bundles := n
	const perTx = 5000
	for startIdx := 0; startIdx < bundles; startIdx += perTx {
		err := d.Write(ctx, func(tx *db.Tx) error {
			for i := startIdx; i < min(startIdx+perTx, bundles); i++ {
				if err := seedBundle(tx, i, account, chain, t0, notAfter, at, i < due); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Columns of the seeded rows, in the order seedRows gives their values.
var seedColumns = map[string][]string{
	"bundles": {"bundle_id", "account_id", "order_id", "product_id", "validation_type", "domain_type", "domain_count",
		"hosting", "subscription_years", "create_time", "t0", "template_application_id", "hosting_status"},
	"certificates": {"certificate_id", "bundle_id", "account_id", "sequence", "state", "coverage_start", "coverage_end",
		"create_time", "update_time", "current_issuance_id", "current_application_id", "renew_at", "expire_at", "escalate_at"},
	"applications": {"application_id", "certificate_id", "bundle_id", "account_id", "status", "automatic", "actor", "domains",
		"validation_method", "contact", "key_algorithm", "ca_name", "ca_ref", "create_time", "update_time"},
	"issuances": {"issuance_id", "certificate_id", "application_id", "bundle_id", "account_id", "serial", "not_before",
		"not_after", "chain_pem", "create_time"},
}

// seedTables is the order the tables are written in.
var seedTables = []string{"bundles", "certificates", "applications", "issuances"}

// seedRows gives bundle i's rows, by table: its bundle, its two instances (the first HOSTED,
// the second NOT_ACTIVATED), the first instance's application and issuance.
func seedRows(i int, account, chain string, t0, notAfter, at time.Time, due bool) map[string][][]any {
	day := 24 * time.Hour
	bundle, order := ids.New(ids.Bundle, t0), ids.New(ids.Order, t0)
	app, iss := ids.New(ids.Application, t0), ids.New(ids.Issuance, t0)
	micros := db.Micros
	renewAt := at.Add(-time.Minute)
	if !due {
		renewAt = at.Add(time.Duration(1+i%300) * day)
	}
	rows := map[string][][]any{
		"bundles": {{bundle, account, order, "dv-single", "DV", "SINGLE", int32(1), true, int32(2), micros(t0), micros(t0), app, "ACTIVE"}},
	}
	certs := make([]string, 2)
	for seq := 1; seq <= 2; seq++ {
		certs[seq-1] = ids.New(ids.Certificate, t0)
		start, end := t0.Add(time.Duration(seq-1)*365*day), t0.Add(time.Duration(seq)*365*day)
		if seq == 1 {
			rows["certificates"] = append(rows["certificates"], []any{certs[0], bundle, account, int32(1), "HOSTED", micros(start),
				micros(end), micros(t0), micros(t0), iss, app, micros(renewAt), micros(notAfter), micros(notAfter.Add(-7 * day))})
			continue
		}
		rows["certificates"] = append(rows["certificates"], []any{certs[1], bundle, account, int32(seq), "NOT_ACTIVATED",
			micros(start), micros(end), micros(t0), micros(t0), nil, nil, nil, nil, nil})
	}
	rows["applications"] = [][]any{{app, certs[0], bundle, account, "ISSUED", false, "customer", fmt.Sprintf(`["bench-%d.example.com"]`, i),
		"DNS_TXT", `{"email":"ops@example.com"}`, "ECDSA_P256", "local", "seeded", micros(t0), micros(t0)}}
	rows["issuances"] = [][]any{{iss, certs[0], app, bundle, account, strconv.Itoa(i), micros(t0), micros(notAfter), chain, micros(t0)}}
	return rows
}

func seedBundle(tx *db.Tx, i int, account, chain string, t0, notAfter, at time.Time, due bool) error {
	rows := seedRows(i, account, chain, t0, notAfter, at, due)
	for _, table := range seedTables {
		cols := seedColumns[table]
		q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` +
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
		for _, r := range rows[table] {
			if _, err := tx.Exec(q, r...); err != nil {
				return err
			}
		}
	}
	return nil
}

// dummyChain is a real, small certificate, stored as every seeded issuance's chain (the sweep
// reads it as the certificate a renewal replaces; nothing verifies it).
func dummyChain(at time.Time) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.example.com"},
		DNSNames: []string{"bench.example.com"}, NotBefore: at.Add(-335 * 24 * time.Hour), NotAfter: at.Add(30 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
