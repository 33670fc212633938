package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certhosting/certhosting/internal/pgdb"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// pgRun is one PostgreSQL measurement: a store size and how many lifecycle replicas sweep it.
type pgRun struct{ stored, replicas int }

// parsePGRuns reads -pg-runs: comma-separated STOREDxREPLICAS.
func parsePGRuns(s string, due int) ([]pgRun, error) {
	var runs []pgRun
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(f), "x")
		n, err1 := strconv.Atoi(a)
		r, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || n < due || r < 1 {
			return nil, fmt.Errorf("-pg-runs: %q is not STOREDxREPLICAS with STORED at least -due", f)
		}
		runs = append(runs, pgRun{n, r})
	}
	return runs, nil
}

// measurePostgres seeds fresh PostgreSQL databases with n instances (due of them at their renewal
// time) and times one sweep by `replicas` lifecycle processes started together on them, sharing
// the work through their claims. The sweep time is the longest of the processes' own tick times.
// With zone, the due bundles' validation records are published there before the timed sweeps.
func measurePostgres(ctx context.Context, dir, admin, lifecycleBin, resolver string, zone *dnsserver.MemorySource, run pgRun, due int) (result, error) {
	r := result{Stored: run.stored, Due: due, Replicas: run.replicas}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	dbs, drop, err := pgdb.Fresh(ctx, admin, fmt.Sprintf("certhosting_sweep_%d_%d", run.stored, run.replicas), "lifecycle", "identity", "localca")
	if err != nil {
		return r, err
	}
	defer drop()
	at := time.Now().UTC().Truncate(time.Second)
	began := time.Now()
	if err := seedPostgres(ctx, dbs["lifecycle"], run.stored, due, at); err != nil {
		return r, fmt.Errorf("seed %d: %w", run.stored, err)
	}
	r.Seed = time.Since(began)
	keyFile, master := filepath.Join(dir, "master.key"), secrets.Generate()
	if err := os.WriteFile(keyFile, []byte(master), 0o600); err != nil {
		return r, err
	}
	args := []string{"sweep", "-db", dbs["lifecycle"], "-identity-db", dbs["identity"], "-master-key-file", keyFile,
		"-localca-db", dbs["localca"], "-localca-resolver", resolver, "-log-level", "warn", "-at", at.Format(time.RFC3339)}
	// The local CA makes its root on first use: once, before the timed sweeps.
	if err := exec.CommandContext(ctx, lifecycleBin, append(args[:len(args)-2:len(args)-2], "-at", at.Add(-time.Hour).Format(time.RFC3339))...).Run(); err != nil {
		return r, fmt.Errorf("first start: %w", err)
	}
	if zone != nil {
		published, err := benchseed.PublishRecords(ctx, zone, dbs["lifecycle"], dbs["localca"], master, at)
		if err != nil {
			return r, err
		}
		if published != due {
			return r, fmt.Errorf("published %d records, want one per due certificate (%d)", published, due)
		}
	}
	outs := make([]sweepOutput, run.replicas)
	errs := make([]error, run.replicas)
	var wg sync.WaitGroup
	for i := range run.replicas {
		wg.Go(func() { outs[i], errs[i] = runSweep(ctx, lifecycleBin, args) })
	}
	wg.Wait()
	for i, out := range outs {
		if errs[i] != nil {
			return r, errs[i]
		}
		r.Sweep = max(r.Sweep, time.Duration(out.DurationMS*float64(time.Millisecond)))
		r.Activated += out.Stats.Activated
		r.Submitted += out.Stats.Submitted
		r.Polled += out.Stats.Polled
		r.Issued += out.Stats.Issued
		r.MaxRSSKB = max(r.MaxRSSKB, out.MaxRSSKB)
	}
	if r.Activated != due || r.Submitted != due {
		return r, fmt.Errorf("the sweeps activated %d and submitted %d, want %d each", r.Activated, r.Submitted, due)
	}
	if zone != nil && r.Issued != due {
		return r, fmt.Errorf("the sweeps issued %d, want every due certificate (%d)", r.Issued, due)
	}
	conn, err := pgx.Connect(ctx, dbs["lifecycle"])
	if err == nil {
		_ = conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&r.DatabaseSize)
		conn.Close(ctx)
	}
	return r, nil
}

// sweepOutput is what `certhosting-lifecycle sweep` prints.
type sweepOutput struct {
	DurationMS float64 `json:"duration_ms"`
	Stats      struct {
		Activated, Submitted, Polled, Issued, RenewalsStarted int
	} `json:"stats"`
	MaxRSSKB int64 `json:"max_rss_kb"`
}

func runSweep(ctx context.Context, bin string, args []string) (sweepOutput, error) {
	var out sweepOutput
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return out, fmt.Errorf("sweep: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return out, fmt.Errorf("sweep output %q: %w", stdout.String(), err)
	}
	return out, nil
}

// seedPostgres migrates the lifecycle database at url and copies the same rows seed writes into
// it, with COPY, then ANALYZEs it.
func seedPostgres(ctx context.Context, url string, n, due int, at time.Time) error {
	d, err := db.Open(ctx, url, store.DBOptions())
	if err != nil {
		return err
	}
	d.Close()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	account, chain, t0, notAfter, err := benchseed.Params(at)
	if err != nil {
		return err
	}
	const perBatch = 20000
	for start := 0; start < n; start += perBatch {
		batch := map[string][][]any{}
		for i := start; i < min(n, start+perBatch); i++ {
			for table, rows := range benchseed.Rows(i, account, chain, t0, notAfter, at, i < due) {
				batch[table] = append(batch[table], rows...)
			}
		}
		for _, table := range benchseed.Tables {
			if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, benchseed.Columns[table], pgx.CopyFromRows(batch[table])); err != nil {
				return fmt.Errorf("copy %s: %w", table, err)
			}
		}
	}
	_, err = conn.Exec(ctx, `ANALYZE`)
	return err
}
