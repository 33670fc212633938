package order_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/order"
)

// `certhosting-order outbox` lists a purchase the lifecycle service keeps refusing, with its last
// error, and -retry makes it due at once; it refuses a database that does not exist.
func TestOutboxCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	refuse := creatorFunc(func(context.Context, *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error) {
		return nil, status.Error(codes.FailedPrecondition, "product_id: dv-multi is not offered by this CA")
	})
	relay := e.newRelay(t, e.store, refuse, order.RelayConfig{})
	o := e.paidOrder(t)
	delivered := e.paidOrder(t)
	for range 3 {
		sweep(t, relay, 2)
		e.clk.Advance(testBackoff.Max)
	}
	// The second purchase goes through once the lifecycle service accepts it.
	lc := e.startLifecycle(t)
	accept := creatorFunc(func(ctx context.Context, in *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error) {
		if in.GetOrderId() == o.GetOrderId() {
			return refuse(ctx, in)
		}
		return lc.svc.CreateBundle(ctx, in)
	})
	sweep(t, e.newRelay(t, e.store, accept, order.RelayConfig{}), 2)

	dbPath := dbtest.URLIn(t, dbtest.FromEnv(t), e.dir, "order.db")
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := order.RunOutboxCommand(context.Background(), args, "CERTHOSTING_TEST_OUTBOX", e.clk.Now(), &out, &errOut)
		return out.String(), err
	}

	out, err := run("-db", dbPath)
	if err != nil {
		t.Fatalf("outbox: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "MESSAGE") {
		t.Fatalf("outbox printed %q; want a header and one message", out)
	}
	for _, want := range []string{o.GetOrderId(), " 4 ", "FailedPrecondition", "not offered by this CA"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("outbox line %q does not show %q", lines[1], want)
		}
	}
	if strings.Contains(out, delivered.GetOrderId()) {
		t.Errorf("outbox lists the delivered order %s: %q", delivered.GetOrderId(), out)
	}

	if m := pending(t, e, e.store); !db.FromMicros(m.NextAttemptTime).After(e.clk.Now()) {
		t.Fatalf("the refused message is due at %v, want after now (%v) for this test to mean anything", db.FromMicros(m.NextAttemptTime), e.clk.Now())
	}
	if out, err := run("-db", dbPath, "-retry"); err != nil || out != "1 undelivered message made due now\n" {
		t.Fatalf("outbox -retry = %q, %v", out, err)
	}
	if m := pending(t, e, e.store); m.NextAttemptTime != db.Micros(e.clk.Now()) || m.Attempts != 4 {
		t.Errorf("after -retry: due %v after %d attempts; want due now (%v), attempts kept", db.FromMicros(m.NextAttemptTime), m.Attempts, e.clk.Now())
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing database", []string{"-db", filepath.Join(e.dir, "nope.db")}, "-db"},
		{"limit 0", []string{"-db", dbPath, "-limit", "0"}, "-limit"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if _, err := run("-limit", "1", "-db", dbPath); err != nil {
		t.Errorf("-limit 1: %v", err)
	}
}
