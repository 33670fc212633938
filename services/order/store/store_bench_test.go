package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// BenchmarkCreateAndPayOrder is the order service's writes of a purchase without gRPC: 64
// concurrent callers each create an order and pay it (order PAID + outbox row), on SQLite with
// synchronous=FULL, group-committed as the service does.
//
//	go test ./services/order/store -run '^$' -bench CreateAndPayOrder -benchtime 20000x
func BenchmarkCreateAndPayOrder(b *testing.B) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(b.TempDir(), "order.db"), db.Options{Migrations: Migrations()})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	s := New(d)
	account := ids.New(ids.Account, time.Now())
	payload := func(o Order) (string, error) { return `{"bundleId":"` + o.BundleID.String + `"}`, nil }

	const writers = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	b.ResetTimer()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				now := time.Now()
				o, err := s.CreateOrder(ctx, Order{ID: ids.New(ids.Order, now), AccountID: account, RequestID: fmt.Sprint("r", i),
					Status: StatusUnpaid, ProductID: "dv-single", ValidationType: "DV", DomainType: "SINGLE", DomainCount: 1,
					SubscriptionYears: 3, Hosting: true, CurrencyCode: "USD", TotalMinor: 14700, CreateTime: db.Micros(now)})
				if err == nil {
					_, err = s.PayOrder(ctx, Payment{AccountID: account, OrderID: o.ID, Reference: fmt.Sprint("p", i),
						BundleID: ids.New(ids.Bundle, now), Time: now, Outbox: payload}, nil)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "purchases/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/purchase")
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
