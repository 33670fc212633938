package db

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// benchSchema is one small table: the write under test is a single-row INSERT, so what the
// benchmark shows is the cost of the commit (an fsync with synchronous=FULL), not of the SQL.
var benchSchema = fstest.MapFS{"00001_bench.sql": {Data: []byte(`-- +goose Up
CREATE TABLE rows (id BIGINT PRIMARY KEY, payload TEXT NOT NULL);
-- +goose Down
DROP TABLE rows;
`)}}

// BenchmarkGroupCommit compares concurrent single-row writes committed one by one (MaxBatch 1:
// each Write is its own transaction and fsync) with the same writes group-committed (the default
// MaxBatch), on the same disk, with synchronous=FULL. Run it where the services keep their
// databases (b.TempDir is under $TMPDIR; on tmpfs an fsync costs nothing and the comparison says
// little):
//
//	go test ./pkg/db -run '^$' -bench GroupCommit -benchtime 2s
func BenchmarkGroupCommit(b *testing.B) {
	for _, bc := range []struct {
		name     string
		maxBatch int
		writers  int // concurrent callers of Write
	}{
		{"one-by-one/writers=1", 1, 1},
		{"one-by-one/writers=64", 1, 64},
		{"grouped/writers=1", 0, 1},
		{"grouped/writers=64", 0, 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			d, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{Migrations: benchSchema, MaxBatch: bc.maxBatch})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if bc.maxBatch == 1 {
				d.w.maxBatch = 1 // Open treats 0 as the default; force one write per transaction
			}
			// bc.writers goroutines share b.N writes, each with one Write in flight.
			var next atomic.Int64
			var wg sync.WaitGroup
			cpu0 := cpuTime()
			b.ResetTimer()
			for range bc.writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for id := next.Add(1); id <= int64(b.N); id = next.Add(1) {
						if err := d.Write(ctx, func(tx *Tx) error {
							_, err := tx.Exec(`INSERT INTO rows (id, payload) VALUES (?, ?)`, id, fmt.Sprintf("row %d", id))
							return err
						}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/write")
		})
	}
}

// cpuTime is the CPU time (user + system) this process has used: per write it is steadier than
// writes/s on a machine shared with other work.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
