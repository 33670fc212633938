package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/auth"
)

// clients are the connections the load goes through. The baseline and the purchases use the very
// same connections to the order service, so the ratio compares the services' work, not two
// client setups.
type clients struct {
	conns     []*grpc.ClientConn
	orders    []orderv1.OrderServiceClient
	health    []healthpb.HealthClient
	lifeConn  *grpc.ClientConn
	lifecycle lifecyclev1.LifecycleServiceClient
}

func dial(orderAddr, lifecycleAddr, key string, n int) (*clients, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.BearerCredentials(key)),
	}
	c := &clients{}
	for range n {
		conn, err := grpc.NewClient(orderAddr, opts...)
		if err != nil {
			c.close()
			return nil, err
		}
		c.conns = append(c.conns, conn)
		c.orders = append(c.orders, orderv1.NewOrderServiceClient(conn))
		c.health = append(c.health, healthpb.NewHealthClient(conn))
	}
	conn, err := grpc.NewClient(lifecycleAddr, opts...)
	if err != nil {
		c.close()
		return nil, err
	}
	c.lifeConn, c.lifecycle = conn, lifecyclev1.NewLifecycleServiceClient(conn)
	return c, nil
}

func (c *clients) close() {
	for _, conn := range c.conns {
		conn.Close()
	}
	if c.lifeConn != nil {
		c.lifeConn.Close()
	}
}

// callTimeout bounds one call of the load; a call that takes this long is a failed run, not a
// data point.
const callTimeout = 30 * time.Second

// load runs n workers for d. Each worker calls step until the window closes (a call in flight
// then finishes: nothing is cancelled, so no write is left half-known) or a step fails, which
// stops every worker. It returns when all have stopped.
func load(ctx context.Context, n int, d time.Duration, step func(ctx context.Context, worker, i int) error) (start, end time.Time, err error) {
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	start = time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && ctx.Err() == nil; i++ {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
				err := step(cctx, w, i)
				cancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	end = time.Now()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return start, end, firstErr
}

// noopResult is the baseline: completed Health/Check calls over the phase.
type noopResult struct {
	calls   int64
	elapsed time.Duration
	cpu     cpuSample // CPU used by each process over the phase
}

func (r noopResult) perSecond() float64 { return float64(r.calls) / r.elapsed.Seconds() }

// noops measures no-op calls per second: grpc.health.v1.Health/Check on the order service,
// through its whole interceptor chain (the health service is public, so auth is a prefix check).
func noops(ctx context.Context, cl *clients, n int, d time.Duration, cpu func() cpuSample) (noopResult, error) {
	var calls atomic.Int64
	cpu0 := cpu()
	req := &healthpb.HealthCheckRequest{}
	start, end, err := load(ctx, n, d, func(ctx context.Context, w, _ int) error {
		resp, err := cl.health[w%len(cl.health)].Check(ctx, req)
		if err != nil {
			return fmt.Errorf("Health/Check: %w", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("Health/Check: %v", resp.GetStatus())
		}
		calls.Add(1)
		return nil
	})
	return noopResult{calls: calls.Load(), elapsed: end.Sub(start), cpu: cpu().sub(cpu0)}, err
}

// purchase is one paid order, as the client saw it.
type purchase struct {
	orderID, bundleID string
	payTime           time.Time     // the order's pay_time, from the PayOrder response
	took              time.Duration // CreateOrder + PayOrder, as the client waited for them
}

// phase is one window of purchases.
type phase struct {
	start, end time.Time // end: when the last client got its last answer
	done       []purchase
	cpu0       cpuSample // at start
}

// purchases runs n clients for d, each buying a hosted 3-year DV certificate again and again:
// CreateOrder, then PayOrder. tag keeps request ids unique across phases.
func purchases(ctx context.Context, cl *clients, n int, d time.Duration, tag string, cpu func() cpuSample) (phase, error) {
	perWorker := make([][]purchase, n)
	cpu0 := cpu()
	start, end, err := load(ctx, n, d, func(ctx context.Context, w, i int) error {
		oc := cl.orders[w%len(cl.orders)]
		t0 := time.Now()
		id := fmt.Sprintf("bench-%s-%d-%d", tag, w, i)
		co, err := oc.CreateOrder(ctx, &orderv1.CreateOrderRequest{
			RequestId: id, ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 3, Hosting: true,
		})
		if err != nil {
			return fmt.Errorf("CreateOrder: %w", err)
		}
		po, err := oc.PayOrder(ctx, &orderv1.PayOrderRequest{OrderId: co.GetOrder().GetOrderId(), PaymentReference: "pay-" + id})
		if err != nil {
			return fmt.Errorf("PayOrder: %w", err)
		}
		o := po.GetOrder()
		if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetBundleId() == "" || o.GetPayTime() == nil {
			return errors.New("PayOrder answered without a PAID order, bundle id and pay time")
		}
		perWorker[w] = append(perWorker[w], purchase{
			orderID: o.GetOrderId(), bundleID: o.GetBundleId(), payTime: o.GetPayTime().AsTime(), took: time.Since(t0),
		})
		return nil
	})
	ph := phase{start: start, end: end, cpu0: cpu0}
	for _, ps := range perWorker {
		ph.done = append(ph.done, ps...)
	}
	return ph, err
}
