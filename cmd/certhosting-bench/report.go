package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"
)

// result is one run.
type result struct {
	fs       string
	loadAvg  string // /proc/loadavg's 1-minute figure just before the run: the machine is shared
	noop     noopResult
	purchase purchaseResult
}

func (r result) ratio() float64 { return r.purchase.perSecond() / r.noop.perSecond() }

// report prints the configuration and the runs as Markdown.
func report(w io.Writer, cfg config, rs []result) {
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s/%s, %s; GOMAXPROCS %d in the load client (the services run with the Go default)\n",
		runtime.NumCPU(), cpuModel(), runtime.GOOS, runtime.GOARCH, runtime.Version(), gomaxprocs())
	fmt.Fprintf(w, "services: order + lifecycle as separate processes on loopback, %s, rate limit off, log level warn\n", databaseName(cfg, rs[0].fs))
	fmt.Fprintf(w, "load: %d concurrent clients over %d connection(s), one Go process on the same machine; warmup %v; each phase %v; %d run(s), each on fresh processes and databases\n",
		cfg.concurrency, cfg.conns, cfg.warmup, cfg.duration, len(rs))
	fmt.Fprintf(w, "purchase: CreateOrder (dv-single, 3 years, hosted) + PayOrder; complete when its bundle exists in the lifecycle service\n\n")

	fmt.Fprintln(w, "| run | load avg before | no-op calls/s | purchases/s | ratio | purchases | drain | pay→bundle p50 / p99 | pay→delivery recorded p50 / p99 | client CreateOrder+PayOrder p50 / p99 |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for i, r := range rs {
		p := r.purchase
		fmt.Fprintf(w, "| %d | %s | %s | %s | %.3f | %s | %s | %s / %s | %s / %s | %s / %s |\n",
			i+1, r.loadAvg, thousands(r.noop.perSecond()), thousands(p.perSecond()), r.ratio(), thousands(float64(p.n)),
			ms(p.drain), ms(p.toBundle.p50), ms(p.toBundle.p99), ms(p.toAck.p50), ms(p.toAck.p99), ms(p.client.p50), ms(p.client.p99))
	}
	fmt.Fprintln(w, "\n| run | CPU per no-op call: order + client | cores busy (no-op) | CPU per purchase: order + lifecycle + client = total | cores busy (purchases) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for i, r := range rs {
		nc := r.noop.cpu.per(int(r.noop.calls))
		pc := r.purchase.cpu.per(r.purchase.n)
		fmt.Fprintf(w, "| %d | %s + %s | %.2f of %d | %s + %s + %s = %s | %.2f of %d |\n", i+1,
			us(nc.order), us(nc.client), r.noop.cpu.total().Seconds()/r.noop.elapsed.Seconds(), runtime.NumCPU(),
			us(pc.order), us(pc.lifecycle), us(pc.client), us(pc.total()),
			r.purchase.cpu.total().Seconds()/r.purchase.elapsed.Seconds(), runtime.NumCPU())
	}
	if len(rs) > 1 {
		lo, hi := rs[0], rs[0]
		noLo, noHi := rs[0].noop.perSecond(), rs[0].noop.perSecond()
		raLo, raHi := rs[0].ratio(), rs[0].ratio()
		for _, r := range rs[1:] {
			if r.purchase.perSecond() < lo.purchase.perSecond() {
				lo = r
			}
			if r.purchase.perSecond() > hi.purchase.perSecond() {
				hi = r
			}
			noLo, noHi = min(noLo, r.noop.perSecond()), max(noHi, r.noop.perSecond())
			raLo, raHi = min(raLo, r.ratio()), max(raHi, r.ratio())
		}
		fmt.Fprintf(w, "\nrange over %d runs: purchases/s %s–%s, no-op calls/s %s–%s, ratio %.3f–%.3f\n",
			len(rs), thousands(lo.purchase.perSecond()), thousands(hi.purchase.perSecond()), thousands(noLo), thousands(noHi), raLo, raHi)
	}
	fmt.Fprintln(w, `
purchases/s: purchases paid in the window / (start of the window → the last of their bundles delivered).
no-op calls/s: grpc.health.v1.Health/Check on the order service, same clients and connections.
drain: from the clients' last answer until the last bundle was delivered (the relay's backlog).
pay→bundle: the order's pay_time to its bundle's create_time in the lifecycle service (both stamped
just before their transaction); pay→delivery recorded: to the order's bundle_delivery_time.
CPU: user + system time of each process over the phase (the purchases' until the last bundle was
delivered), divided by calls or purchases; cores busy: the three processes' CPU / wall time.`)
}

func thousands(v float64) string {
	s := fmt.Sprintf("%d", int64(v+0.5))
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ms(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "model unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "model unknown"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func splitArgs(s string) []string { return strings.Fields(s) }

// debugAddrs are the services' -debug-addr when profiling.
type debugAddrs struct{ order, lifecycle string }

func freeDebugAddrs() (debugAddrs, error) {
	var a debugAddrs
	for _, p := range []*string{&a.order, &a.lifecycle} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return a, err
		}
		*p = l.Addr().String()
		l.Close()
	}
	return a, nil
}

// fetchProfile takes a CPU profile of d from a service's /debug/pprof/profile into path.
func fetchProfile(ctx context.Context, addr string, d time.Duration, path string) error {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", req.URL, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
