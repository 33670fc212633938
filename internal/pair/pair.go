// Package pair starts the service pair as real processes on loopback, for end-to-end tests and
// the load benchmark: it builds the binaries, bootstraps an identity database, and starts, stops
// or kills each service on its own ports and files, so runs never share state. Other processes a
// test needs beside the services (a CA plug-in) are started, killed and logged the same way.
package pair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certhosting/certhosting/pkg/secrets"
)

// Binaries are the built service binaries, the local CA as a CA plug-in process, and the
// development DNS server.
type Binaries struct {
	Order         string
	Lifecycle     string
	LocalCAPlugin string
	DevDNS        string
	// Agent is the deploy agent (cmd/certhosting-agent).
	Agent string
}

// Build compiles both services, the local CA plug-in and the development DNS server into dir. race adds the race detector
// (end-to-end tests run the services with it, so a data race in a real process fails the test).
func Build(ctx context.Context, dir string, race bool) (Binaries, error) {
	root, err := moduleRoot()
	if err != nil {
		return Binaries{}, err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator)}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./services/order/cmd/certhosting-order", "./services/lifecycle/cmd/certhosting-lifecycle",
		"./cmd/certhosting-localca-plugin", "./cmd/certhosting-devdns", "./cmd/certhosting-agent")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %v\n%s", err, out)
	}
	return Binaries{Order: filepath.Join(dir, "certhosting-order"), Lifecycle: filepath.Join(dir, "certhosting-lifecycle"),
		LocalCAPlugin: filepath.Join(dir, "certhosting-localca-plugin"), DevDNS: filepath.Join(dir, "certhosting-devdns"),
		Agent: filepath.Join(dir, "certhosting-agent")}, nil
}

// moduleRoot finds the directory holding go.mod, from this source file's location.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("pair: cannot locate source")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("pair: go.mod not found")
		}
		dir = parent
	}
}

// ModuleRoot is the repository root (where go.mod is).
func ModuleRoot() (string, error) { return moduleRoot() }

// Options configure a Pair.
type Options struct {
	// Dir holds the databases, key files and logs; a test's t.TempDir().
	Dir string
	// OrderArgs and LifecycleArgs are extra flags for each service.
	OrderArgs, LifecycleArgs []string
	// Log receives both services' output, each line prefixed; nil keeps it in memory only
	// (see Pair.Logs).
	Log io.Writer
	// LogLevel is the services' -log-level; empty means debug (every call logged, which tests
	// want when they fail). The benchmark uses warn: a log line per call would be a large part of
	// what it measures.
	LogLevel string
	// StartTimeout bounds how long a service may take to start serving (default 30s; a benchmark's
	// store of a million rows is checked at start and needs longer).
	StartTimeout time.Duration
	// Databases are the databases' URLs by name, "order", "lifecycle", "identity" and "localca"
	// (postgres:// URLs, say); a name not given is a SQLite file of that name in Dir.
	Databases map[string]string
}

// database is the URL of the pair's database name.
func (p *Pair) database(name string) string {
	if u := p.opts.Databases[name]; u != "" {
		return u
	}
	return filepath.Join(p.opts.Dir, name+".db")
}

// Pair is the two services running as processes.
type Pair struct {
	bins Binaries
	opts Options

	// OrderAddr and LifecycleAddr are the loopback addresses the services listen on; they stay
	// the same across restarts.
	OrderAddr, LifecycleAddr string
	// DemoKey is a customer key of the "demo" account, also in DemoKeyFile; ServiceKeyFile holds
	// the order service's key.
	DemoKey, DemoKeyFile, ServiceKeyFile string
	// IdentityDB is the identity database both services use (a file, or a URL).
	IdentityDB string

	mu        sync.Mutex
	order     *proc
	lifecycle *proc
	others    map[string]*proc // by name; see StartProcess
	logs      bytes.Buffer
}

type proc struct {
	cmd  *exec.Cmd
	done chan error
}

// Start bootstraps identity and starts the lifecycle service, then the order service: New and
// StartServices.
func Start(ctx context.Context, bins Binaries, opts Options) (*Pair, error) {
	p, err := New(ctx, bins, opts)
	if err != nil {
		return nil, err
	}
	if err := p.StartServices(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// New bootstraps identity in opts.Dir and returns the pair with neither service running. A test
// that must start something the services' flags name first (a CA plug-in the lifecycle's
// -ca-config routes to) starts it, then calls StartServices.
func New(ctx context.Context, bins Binaries, opts Options) (*Pair, error) {
	p := &Pair{bins: bins, opts: opts, others: map[string]*proc{}}
	p.IdentityDB = p.database("identity")
	out, err := p.Admin(ctx, "bootstrap", "-dir", opts.Dir)
	if err != nil {
		return nil, err
	}
	p.DemoKey = strings.TrimSpace(out)
	p.DemoKeyFile = filepath.Join(opts.Dir, "demo-api-key")
	p.ServiceKeyFile = filepath.Join(opts.Dir, "order-service-key")
	// The first start of each service listens on port 0 and reports the port the kernel chose
	// (-ready-file). Picking a free port here and handing it over would leave a window in which a
	// test running in parallel could take it.
	p.LifecycleAddr, p.OrderAddr = "127.0.0.1:0", "127.0.0.1:0"
	return p, nil
}

// AddLifecycleArgs adds flags for the lifecycle service's next starts: for a test that must start
// a process the flags name (a DNS server the local CA asks) before it knows them.
func (p *Pair) AddLifecycleArgs(args ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.opts.LifecycleArgs = append(slices.Clone(p.opts.LifecycleArgs), args...)
}

// StartServices starts the lifecycle service, then the order service; if either fails, whatever
// the pair runs is stopped.
func (p *Pair) StartServices(ctx context.Context) error {
	err := p.StartLifecycle(ctx)
	if err == nil {
		err = p.StartOrder(ctx)
	}
	if err != nil {
		p.Stop()
	}
	return err
}

// FreeAddr picks a free loopback port (127.0.0.1:N) for a process that cannot listen on port 0
// and report its address (Pebble). It is closed again before it is used, so another process may
// take it in between: prefer port 0 and a ready file where the process supports them.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Admin runs `certhosting-order admin <args>` against the pair's identity database.
func (p *Pair) Admin(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"admin", args[0], "-identity-db", p.IdentityDB}, args[1:]...)
	cmd := exec.CommandContext(ctx, p.bins.Order, full...)
	cmd.Env = childEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("admin %s: %v: %s", args[0], err, stderr.String())
	}
	return string(out), nil
}

// childEnv is the environment of the services and admin commands. A binary built with -race
// sleeps a second when it exits (the race runtime's atexit_sleep_ms, time for other threads to
// report), which every admin command, stop and kill would pay; races found while running are
// still reported and still make the process exit 66. GORACE options set by the caller come later
// and win.
func childEnv() []string {
	return append(os.Environ(), "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
}

// StartOrder starts (or restarts) the order service and waits until it serves.
func (p *Pair) StartOrder(ctx context.Context) error {
	pr, addr, err := p.start(ctx, "order", p.bins.Order, p.orderArgs(p.OrderAddr, p.LifecycleAddr))
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.order, p.OrderAddr = pr, addr
	p.mu.Unlock()
	return nil
}

func (p *Pair) orderArgs(listen, lifecycleAddr string) []string {
	return append([]string{
		"-listen", listen,
		"-db", p.database("order"),
		"-identity-db", p.IdentityDB,
		"-lifecycle-addr", lifecycleAddr,
		"-lifecycle-key-file", p.ServiceKeyFile,
	}, p.opts.OrderArgs...)
}

// StartOrderReplica starts another replica of the order service on the pair's databases (which
// must be PostgreSQL's: a SQLite file has one process), as a process named name (see
// StartProcess) listening on listen ("127.0.0.1:0" the first time), delivering to lifecycleAddrs
// (comma-separated). It returns the replica's address.
func (p *Pair) StartOrderReplica(ctx context.Context, name, listen, lifecycleAddrs string) (string, error) {
	return p.StartProcess(ctx, name, p.bins.Order, p.orderArgs(listen, lifecycleAddrs)...)
}

// StartLifecycleReplica starts another replica of the lifecycle service, like StartOrderReplica.
func (p *Pair) StartLifecycleReplica(ctx context.Context, name, listen string) (string, error) {
	args, err := p.lifecycleArgs(listen)
	if err != nil {
		return "", err
	}
	return p.StartProcess(ctx, name, p.bins.Lifecycle, args...)
}

// StartLifecycle starts (or restarts) the lifecycle service and waits until it serves.
func (p *Pair) StartLifecycle(ctx context.Context) error {
	args, err := p.lifecycleArgs(p.LifecycleAddr)
	if err != nil {
		return err
	}
	pr, addr, err := p.start(ctx, "lifecycle", p.bins.Lifecycle, args)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lifecycle, p.LifecycleAddr = pr, addr
	p.mu.Unlock()
	return nil
}

func (p *Pair) lifecycleArgs(listen string) ([]string, error) {
	keyFile := filepath.Join(p.opts.Dir, "lifecycle-master.key")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := os.Stat(keyFile); err != nil {
		if err := os.WriteFile(keyFile, []byte(secrets.Generate()), 0o600); err != nil {
			return nil, err
		}
	}
	return append([]string{
		"-listen", listen,
		"-db", p.database("lifecycle"),
		"-identity-db", p.IdentityDB,
		"-master-key-file", keyFile,
		"-localca-db", p.database("localca"),
		// Each process its own CRL port: certificates name the address of the process that issued
		// them (tests read it from the certificate's distribution point).
		"-crl-listen", "127.0.0.1:0",
	}, p.opts.LifecycleArgs...), nil
}

// start runs a service and waits until it has written its ready file: the address it listens on.
// A restart listens on the address of the first start, so clients and the other service find it
// again; another process could take the port while the service is down, which for the second or
// so of a restart on loopback is unlikely enough.
func (p *Pair) start(ctx context.Context, name, bin string, args []string) (*proc, string, error) {
	ready := filepath.Join(p.opts.Dir, name+".ready")
	_ = os.Remove(ready)
	level := p.opts.LogLevel
	if level == "" {
		level = "debug"
	}
	args = append(args, "-ready-file", ready, "-log-level", level)
	cmd := exec.Command(bin, args...)
	w := &prefixWriter{prefix: name + ": ", p: p}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.Dir = p.opts.Dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	pr := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { pr.done <- cmd.Wait() }()
	limit := p.opts.StartTimeout
	if limit <= 0 {
		limit = 30 * time.Second
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, ok := readAddr(ready); ok {
			return pr, addr, nil
		}
		select {
		case err := <-pr.done:
			return nil, "", fmt.Errorf("%s exited before serving: %v\n%s", name, err, p.Logs())
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return nil, "", fmt.Errorf("%s did not start within %s\n%s", name, limit, p.Logs())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, "", ctx.Err()
		case <-tick.C:
		}
	}
}

// readAddr reads a ready file; ok is false until it holds a whole address with a port.
func readAddr(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	addr := strings.TrimSpace(string(b))
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || port == "0" {
		return "", false
	}
	return addr, true
}

// StartProcess starts another process the test needs, the way the services are started: in Dir,
// its output in Logs with each line prefixed by name, killed if the test binary dies, and waited
// for until it has written the address it listens on to the file of its -ready-file flag (it must
// take -ready-file and -log-level, as the services do). It returns that address. After
// KillProcess or StopProcess the same name starts again; a restart that must listen where the
// first start did passes that address in args (-listen).
func (p *Pair) StartProcess(ctx context.Context, name, bin string, args ...string) (string, error) {
	if name == "order" || name == "lifecycle" {
		return "", fmt.Errorf("pair: %s is a service's name", name)
	}
	p.mu.Lock()
	_, running := p.others[name]
	p.mu.Unlock()
	if running {
		return "", fmt.Errorf("pair: a process named %s is running", name)
	}
	pr, addr, err := p.start(ctx, name, bin, args)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	p.others[name] = pr
	p.mu.Unlock()
	return addr, nil
}

// KillProcess SIGKILLs a process StartProcess started and waits for it to die.
func (p *Pair) KillProcess(name string) { p.signalOther(name, syscall.SIGKILL) }

// PauseProcess stops a process StartProcess started with SIGSTOP: it stays alive and holds its
// sockets, but answers nothing (what a hung or overloaded server looks like to its clients) until
// ResumeProcess, or until it is killed.
func (p *Pair) PauseProcess(name string) error { return p.sendOther(name, syscall.SIGSTOP) }

// ResumeProcess lets a paused process go on (SIGCONT).
func (p *Pair) ResumeProcess(name string) error { return p.sendOther(name, syscall.SIGCONT) }

func (p *Pair) sendOther(name string, sig syscall.Signal) error {
	p.mu.Lock()
	pr := p.others[name]
	p.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("pair: no process named %s is running", name)
	}
	return pr.cmd.Process.Signal(sig)
}

// StopProcess stops a process StartProcess started (SIGTERM) and returns its exit error.
func (p *Pair) StopProcess(name string) error { return p.signalOther(name, syscall.SIGTERM) }

func (p *Pair) signalOther(name string, sig syscall.Signal) error {
	p.mu.Lock()
	pr := p.others[name]
	delete(p.others, name)
	p.mu.Unlock()
	if err := pr.signal(sig); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// KillOrder SIGKILLs the order service (no graceful shutdown) and waits for it to die.
func (p *Pair) KillOrder() { p.signal(&p.order, syscall.SIGKILL) }

// KillLifecycle SIGKILLs the lifecycle service and waits for it to die.
func (p *Pair) KillLifecycle() { p.signal(&p.lifecycle, syscall.SIGKILL) }

// StopOrder stops the order service gracefully (SIGTERM) and returns its exit error.
func (p *Pair) StopOrder() error { return p.signal(&p.order, syscall.SIGTERM) }

// StopLifecycle stops the lifecycle service gracefully (SIGTERM) and returns its exit error.
func (p *Pair) StopLifecycle() error { return p.signal(&p.lifecycle, syscall.SIGTERM) }

func (p *Pair) signal(slot **proc, sig syscall.Signal) error {
	p.mu.Lock()
	pr := *slot
	*slot = nil
	p.mu.Unlock()
	return pr.signal(sig)
}

// signal sends sig and waits for the process to exit; a nil process is not running.
func (pr *proc) signal(sig syscall.Signal) error {
	if pr == nil {
		return nil
	}
	_ = pr.cmd.Process.Signal(sig)
	select {
	case err := <-pr.done:
		if sig == syscall.SIGKILL {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		_ = pr.cmd.Process.Kill()
		return fmt.Errorf("process did not exit within 30s of %v", sig)
	}
}

// Stop stops both services gracefully, then the processes StartProcess started; it returns every
// non-clean exit.
func (p *Pair) Stop() error {
	errs := []error{p.StopOrder(), p.StopLifecycle()}
	p.mu.Lock()
	names := make([]string, 0, len(p.others))
	for name := range p.others {
		names = append(names, name)
	}
	p.mu.Unlock()
	for _, name := range names {
		errs = append(errs, p.StopProcess(name))
	}
	return errors.Join(errs...)
}

// OrderPID is the order service's process id, 0 when it is not running (the benchmark reads
// its CPU time).
func (p *Pair) OrderPID() int { return p.pid(&p.order) }

// LifecyclePID is the lifecycle service's process id, 0 when it is not running.
func (p *Pair) LifecyclePID() int { return p.pid(&p.lifecycle) }

func (p *Pair) pid(slot **proc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *slot == nil {
		return 0
	}
	return (*slot).cmd.Process.Pid
}

// Logs returns the output of both services and of the other processes so far.
func (p *Pair) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

type prefixWriter struct {
	prefix string
	p      *Pair
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := w.prefix + string(w.buf[:i+1])
		w.buf = w.buf[i+1:]
		w.p.mu.Lock()
		w.p.logs.WriteString(line)
		w.p.mu.Unlock()
		if w.p.opts.Log != nil {
			_, _ = io.WriteString(w.p.opts.Log, line)
		}
	}
	return len(b), nil
}
