// Package e2e tests the service pair end to end: both services run as real processes on loopback
// (internal/pair), each test with its own directory, databases and ports, and the tests talk to
// them only through the generated gRPC clients, the admin commands and signals, as an operator and
// a customer would.
package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/auth"
)

// bins are the service binaries, built once by TestMain.
var bins pair.Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every test skips itself
	}
	dir, err := os.MkdirTemp("", "certhosting-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if bins, err = pair.Build(ctx, dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// env is one running pair and the demo account's clients.
type env struct {
	*pair.Pair
	clients
}

// clients are both services' clients, authenticated with one key.
type clients struct {
	order     orderv1.OrderServiceClient
	lifecycle lifecyclev1.LifecycleServiceClient
}

// start runs a pair in the test's own directory and stops it when the test ends. A service that
// does not exit cleanly then (a data race under -race exits 66) fails the test, and a failed test
// keeps both services' logs (see keepLogs).
func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, pair.Options{Dir: t.TempDir()})
}

// startWith is start with the pair's options (its directory, extra flags) given.
func startWith(t *testing.T, opts pair.Options) *env {
	t.Helper()
	return startAfter(t, opts, nil)
}

// startAfter is startWith, calling first on the pair before its services start: to start a
// process their flags name (a CA plug-in the lifecycle's -ca-config routes to) with the pair's
// StartProcess, so that it is logged and stopped with the services.
func startAfter(t *testing.T, opts pair.Options, first func(p *pair.Pair)) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: starts the services as processes; skipped with -short")
	}
	p, err := pair.New(t.Context(), bins, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping the pair: %v", err)
		}
		if t.Failed() {
			keepLogs(t, p.Logs())
		}
	})
	if first != nil {
		first(p)
	}
	if err := p.StartServices(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &env{Pair: p, clients: connect(t, p, p.DemoKey)}
}

// connect makes both services' clients for key.
func connect(t *testing.T, p *pair.Pair, key string) clients {
	t.Helper()
	return clients{
		order:     orderv1.NewOrderServiceClient(dial(t, p.OrderAddr, key)),
		lifecycle: lifecyclev1.NewLifecycleServiceClient(dial(t, p.LifecycleAddr, key)),
	}
}

// dial connects to addr, sending key as the bearer credential unless it is empty. The reconnect
// backoff is short because tests restart services and expect to reach them again at once.
func dial(t *testing.T, addr, key string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(callTimeout),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerCredentials(key)))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// callTimeout gives every call without a deadline one, so a hung service fails the test that
// called it instead of the whole run's -timeout.
func callTimeout(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// customer is an account made with the admin commands, with one customer key.
type customer struct {
	account, keyID, key string
}

// newCustomer creates an account and a customer key the way an operator does.
func (e *env) newCustomer(t *testing.T, name string) customer {
	t.Helper()
	c := customer{account: e.admin(t, "create-account", "-name", name)}
	c.key = e.admin(t, "create-key", "-account", c.account, "-role", "owner", "-name", name+"-key")
	// list-keys prints "key_id<TAB>role<TAB>state<TAB>name", one key a line.
	c.keyID, _, _ = strings.Cut(e.admin(t, "list-keys", "-account", c.account), "\t")
	return c
}

// admin runs an admin command and returns its trimmed output.
func (e *env) admin(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.Admin(t.Context(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// waitFor polls cond until it returns nil, and fails the test with cond's last error if that
// takes longer than timeout. cond's error says what is not true yet.
func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %v: %v", timeout, err)
		}
		<-tick.C
	}
}

// keepLogs shows a failed test's service logs: the warnings and errors and the last lines in the
// test's output, and all of it in a file that outlives the test's directory.
func keepLogs(t *testing.T, logs string) {
	var notable []string
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "DATA RACE") {
			notable = append(notable, line)
		}
	}
	where := "not kept"
	f, err := os.CreateTemp("", "certhosting-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+"-*.log")
	if err == nil {
		_, err = f.WriteString(logs)
		err = errors.Join(err, f.Close())
		where = f.Name()
	}
	if err != nil {
		where = err.Error()
	}
	t.Logf("service logs: %s\nwarnings and errors (%d, the last 40):\n%s\nlast lines:\n%s",
		where, len(notable), tail(strings.Join(notable, ""), 40), tail(logs, 40))
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
