package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
)

// The order service takes payments while the lifecycle service is down; the outbox holds the
// bundle until the lifecycle service is back, and then it arrives exactly once.
func TestBundleArrivesOnceAfterLifecycleRestart(t *testing.T) {
	t.Parallel()
	e := start(t)
	if err := e.StopLifecycle(); err != nil {
		t.Fatalf("stopping the lifecycle service: %v", err)
	}
	o := e.create(t, orderRequest("while-down", 3, true))
	paid := e.pay(t, o.GetOrderId(), "pay-while-down")
	// Let the relay fail at least once, so the delivery below is a retry from the outbox.
	waitFor(t, 10*time.Second, func() error {
		for _, line := range strings.Split(e.Logs(), "\n") {
			if strings.Contains(line, "outbox delivery failed") && strings.Contains(line, o.GetOrderId()) {
				return nil
			}
		}
		return fmt.Errorf("no failed delivery of %s logged yet", o.GetOrderId())
	})

	if err := e.StartLifecycle(t.Context()); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	got := e.delivered(t, o.GetOrderId())
	t.Logf("bundle delivered %v after the lifecycle service restarted", time.Since(restarted).Round(time.Millisecond))
	if got.GetBundleId() != paid.GetBundleId() || len(got.GetCertificateIds()) != 3 {
		t.Errorf("delivered bundle %s with %d certificates, want %s with 3", got.GetBundleId(), len(got.GetCertificateIds()), paid.GetBundleId())
	}
	if n := e.bundlesPerOrder(t); len(n) != 1 || n[o.GetOrderId()] != 1 {
		t.Fatalf("bundles per order = %v, want one, for %s", n, o.GetOrderId())
	}

	// One more relay cycle: deliver another order, then count again.
	next := e.buy(t, "after-restart", 2, false)
	if n := e.bundlesPerOrder(t); len(n) != 2 || n[o.GetOrderId()] != 1 || n[next.GetOrderId()] != 1 {
		t.Errorf("bundles per order after another delivery = %v, want one each for %s and %s", n, o.GetOrderId(), next.GetOrderId())
	}
}

// Kill the order service with SIGKILL again and again while customers create and pay orders.
// Every payment it acknowledged must survive, be delivered, and have exactly one bundle; a
// payment whose answer was lost may or may not have happened, but never twice.
func TestAcknowledgedPaymentsSurviveOrderServiceKills(t *testing.T) {
	t.Parallel()
	e := start(t)
	const workers, kills = 4, 6

	var (
		mu     sync.Mutex
		acked  = map[string]*orderv1.Order{} // order id -> the PayOrder answer
		failed = map[codes.Code]int{}        // calls that failed, by code
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	record := func(o *orderv1.Order, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed[status.Code(err)]++
		} else if o != nil {
			acked[o.GetOrderId()] = o
		}
	}
	for w := range workers {
		wg.Go(func() {
			// WaitForReady: while the service is down a call waits for it to come back instead of
			// failing at once; a call in flight when it is killed still fails.
			ready := grpc.WaitForReady(true)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				years := int32(2 + i%2)
				created, err := e.order.CreateOrder(t.Context(), orderRequest(fmt.Sprintf("kill-%d-%d", w, i), years, years == 3), ready)
				if err != nil {
					record(nil, err)
					continue
				}
				id := created.GetOrder().GetOrderId()
				paid, err := e.order.PayOrder(t.Context(), &orderv1.PayOrderRequest{OrderId: id, PaymentReference: "pay-" + id}, ready)
				record(paid.GetOrder(), err)
			}
		})
	}
	for range kills {
		time.Sleep(500*time.Millisecond + rand.N(time.Second)) // load between kills, not an assertion
		e.KillOrder()
		if err := e.StartOrder(t.Context()); err != nil {
			close(stop)
			wg.Wait()
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // some payments after the last restart too
	close(stop)
	wg.Wait()
	t.Logf("%d kills: %d payments acknowledged, failed calls by code %v", kills, len(acked), failed)
	for code, n := range failed {
		if code != codes.Unavailable {
			t.Errorf("%d calls failed with %v; a killed service should only be Unavailable", n, code)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no payment was acknowledged")
	}

	// Wait until the outbox is drained: every paid order shows its delivered bundle. Normally
	// that takes a second; if deliveries failed meanwhile (a call past its 5 s deadline on a
	// starved machine), the relay's backoff (0.5 s doubling) can hold a message back for tens of
	// seconds.
	var orders []*orderv1.Order
	waitFor(t, time.Minute, func() error {
		orders = e.listOrders(t)
		waiting := 0
		for _, o := range orders {
			if o.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_PAID && o.GetBundleDeliveryTime() == nil {
				waiting++
			}
		}
		if waiting > 0 {
			return fmt.Errorf("%d of %d orders paid but not delivered yet", waiting, len(orders))
		}
		return nil
	})

	bundles := e.bundlesPerOrder(t)
	byID := map[string]*orderv1.Order{}
	for _, o := range orders {
		byID[o.GetOrderId()] = o
		want := 0
		if o.GetStatus() == orderv1.OrderStatus_ORDER_STATUS_PAID {
			want = 1
		}
		if got := bundles[o.GetOrderId()]; got != want {
			t.Errorf("order %s (%v) has %d bundles, want %d", o.GetOrderId(), o.GetStatus(), got, want)
		}
	}
	for id := range bundles {
		if byID[id] == nil {
			t.Errorf("bundle for order %s, which ListOrders does not show", id)
		}
	}
	for id, ack := range acked {
		o := byID[id]
		if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || o.GetBundleId() != ack.GetBundleId() ||
			len(o.GetCertificateIds()) != int(o.GetSubscriptionYears()) {
			t.Errorf("acknowledged payment of %s: order is %v, bundle %q (acknowledged %q), %d certificates for %d years",
				id, o.GetStatus(), o.GetBundleId(), ack.GetBundleId(), len(o.GetCertificateIds()), o.GetSubscriptionYears())
		}
	}
}
