package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// How completion is detected, without making the detection part of what is measured:
//
//   - While the relay drains its backlog, the only call the benchmark makes is a GetOrder, every
//     10 ms, on the purchase paid last. The relay sends the outbox in the order it became due, so
//     that order is among the last delivered.
//   - Then it reads every order (ListOrders) and every bundle (ListBundles) once, through the
//     services' public API, and checks that each purchase of the window has a delivered order and
//     a bundle in the lifecycle service (if any is missing it waits and reads again).
//   - The end of the window is the latest bundle_delivery_time among its orders: the relay sets it
//     after the lifecycle service acknowledged the bundle, that is after the bundle was committed,
//     so it is an upper bound on "the last bundle exists" and the figure errs low, not high. How
//     often the benchmark polls does not change it.
//
// The services stamp these times with the same system clock the benchmark reads (one machine).

// deliveryPoll is how often the drain is checked; it bounds nothing in the figures.
const deliveryPoll = 10 * time.Millisecond

// drainTimeout bounds the wait for the relay to deliver a window's bundles.
const drainTimeout = 5 * time.Minute

// waitDelivered waits until every purchase's order shows its bundle delivery, and returns each
// order's bundle_delivery_time. drained (if not nil) is called once the last paid order is
// delivered, before the full read.
func waitDelivered(ctx context.Context, cl *clients, done []purchase, progress io.Writer, drained func()) (map[string]time.Time, error) {
	if len(done) == 0 {
		return map[string]time.Time{}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	last := done[0]
	for _, p := range done {
		if p.payTime.After(last.payTime) {
			last = p
		}
	}
	oc := cl.orders[0]
	for {
		resp, err := oc.GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: last.orderID})
		if err != nil {
			return nil, fmt.Errorf("GetOrder %s: %w", last.orderID, err)
		}
		if resp.GetOrder().GetBundleDeliveryTime() != nil {
			break
		}
		if err := sleep(ctx, deliveryPoll); err != nil {
			return nil, fmt.Errorf("the last paid order was not delivered within %v", drainTimeout)
		}
	}
	if drained != nil {
		drained()
	}
	for {
		delivered, err := deliveredOrders(ctx, oc)
		if err != nil {
			return nil, err
		}
		missing := 0
		for _, p := range done {
			if _, ok := delivered[p.orderID]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return delivered, nil
		}
		fmt.Fprintf(progress, "%d of %d orders not delivered yet\n", missing, len(done))
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, fmt.Errorf("%d orders were not delivered within %v", missing, drainTimeout)
		}
	}
}

// deliveredOrders reads every PAID order of the account and returns the delivery time of those
// whose bundle the relay has delivered.
func deliveredOrders(ctx context.Context, oc orderv1.OrderServiceClient) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	token := ""
	for {
		resp, err := oc.ListOrders(ctx, &orderv1.ListOrdersRequest{
			Status: orderv1.OrderStatus_ORDER_STATUS_PAID, PageSize: 500, PageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("ListOrders: %w", err)
		}
		for _, o := range resp.GetOrders() {
			if t := o.GetBundleDeliveryTime(); t != nil {
				out[o.GetOrderId()] = t.AsTime()
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// bundles reads every bundle of the account from the lifecycle service: bundle id → create_time.
func bundles(ctx context.Context, lc lifecyclev1.LifecycleServiceClient) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	token := ""
	for {
		resp, err := lc.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{PageSize: 500, PageToken: token})
		if err != nil {
			return nil, fmt.Errorf("ListBundles: %w", err)
		}
		for _, b := range resp.GetBundles() {
			out[b.GetBundleId()] = b.GetCreateTime().AsTime()
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// purchaseResult is the measured purchase window.
type purchaseResult struct {
	n        int
	elapsed  time.Duration // start of the window → the last bundle delivered
	drain    time.Duration // the clients' last answer → the last bundle delivered
	toBundle quantiles     // pay_time → the bundle's create_time in the lifecycle service
	toAck    quantiles     // pay_time → bundle_delivery_time recorded on the order
	client   quantiles     // CreateOrder + PayOrder as the client waited for them
	cpu      cpuSample     // CPU used by each process from the start of the window until drained
}

func (r purchaseResult) perSecond() float64 { return float64(r.n) / r.elapsed.Seconds() }

// complete waits for the window's bundles and derives its figures from the services' timestamps.
func complete(ctx context.Context, cl *clients, ph phase, progress io.Writer, cpu func() cpuSample) (purchaseResult, error) {
	if len(ph.done) == 0 {
		return purchaseResult{}, fmt.Errorf("no purchase completed in the window")
	}
	var used cpuSample
	delivered, err := waitDelivered(ctx, cl, ph.done, progress, func() { used = cpu().sub(ph.cpu0) })
	if err != nil {
		return purchaseResult{}, err
	}
	created, err := bundles(ctx, cl.lifecycle)
	if err != nil {
		return purchaseResult{}, err
	}
	var last time.Time
	toBundle := make([]time.Duration, 0, len(ph.done))
	toAck := make([]time.Duration, 0, len(ph.done))
	client := make([]time.Duration, 0, len(ph.done))
	for _, p := range ph.done {
		ct, ok := created[p.bundleID]
		if !ok {
			return purchaseResult{}, fmt.Errorf("order %s was delivered but bundle %s is not in the lifecycle service", p.orderID, p.bundleID)
		}
		dt := delivered[p.orderID]
		if dt.After(last) {
			last = dt
		}
		toBundle = append(toBundle, ct.Sub(p.payTime))
		toAck = append(toAck, dt.Sub(p.payTime))
		client = append(client, p.took)
	}
	return purchaseResult{
		n:        len(ph.done),
		elapsed:  last.Sub(ph.start),
		drain:    max(0, last.Sub(ph.end)),
		toBundle: quantilesOf(toBundle),
		toAck:    quantilesOf(toAck),
		client:   quantilesOf(client),
		cpu:      used,
	}, nil
}

type quantiles struct{ p50, p99, max time.Duration }

func quantilesOf(ds []time.Duration) quantiles {
	if len(ds) == 0 {
		return quantiles{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return quantiles{p50: at(0.50), p99: at(0.99), max: ds[len(ds)-1]}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
