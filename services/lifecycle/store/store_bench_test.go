package store

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

// BenchmarkCreateBundle is the lifecycle side of a purchase without gRPC: 64 concurrent callers
// create 3-year bundles (a bundle, three instances, three history events) on SQLite with
// synchronous=FULL, group-committed as the service does. Every statement runs on the one writer
// goroutine, so its cost per bundle bounds how many bundles a second the service can take.
//
//	go test ./services/lifecycle/store -run '^$' -bench CreateBundle -benchtime 20000x
func BenchmarkCreateBundle(b *testing.B) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "lifecycle.db"), db.Options{Migrations: Migrations()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s := New(d, nil)
	account := ids.New(ids.Account, time.Now())

	const writers = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	b.ResetTimer()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				now := time.Now()
				us := db.Micros(now)
				bundleID := ids.New(ids.Bundle, now)
				nb := NewBundle{
					Bundle: Bundle{ID: bundleID, AccountID: account, OrderID: ids.New(ids.Order, now), ProductID: "dv-single",
						ValidationType: "DV", DomainType: "SINGLE", DomainCount: 1, Hosting: true, SubscriptionYears: 3, CreateTime: us},
					Reason: "order paid",
				}
				for seq := 1; seq <= 3; seq++ {
					st := state.NotActivated
					if seq == 1 {
						st = state.PendingApplication
					}
					nb.Certificates = append(nb.Certificates, Certificate{ID: ids.New(ids.Certificate, now), BundleID: bundleID,
						AccountID: account, Sequence: seq, State: st, CreateTime: us, UpdateTime: us})
				}
				if _, created, err := s.CreateBundle(ctx, nb); err != nil || !created {
					b.Error(created, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bundles/s")
	// CPU time per bundle is steadier than bundles/s on a machine shared with other work, and
	// it is what the writer goroutine spends serially.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/bundle")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
