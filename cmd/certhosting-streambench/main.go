// Command certhosting-streambench measures issue 14's target 4: many open WatchEvents streams on
// one lifecycle process while renewals run: the memory each stream costs the service, and the
// latency from an event's commit to its delivery, on every stream, beside the same with one stream
// in the same run.
//
// Each phase runs the real lifecycle service (internal/pair) on a store of its own, seeded with
// -stored hosted bundles of one account (internal/benchseed, with their history), -due of them
// renewing -delay after the seed, and their validation records published on a DNS server the local
// CA asks, so each renewal completes (key, certificate, issuance, events). Before the renewals are
// due the phase opens its streams over -conns client connections and waits for each stream's
// headers (from then on every committed event reaches it); then it records, for every event every
// stream receives, the time from the event's own timestamp to its receipt, until every stream has
// received every event the store holds for it. The event's timestamp is taken just before its write
// transaction is queued, so the figure is an upper bound on commit → delivery that also holds the
// wait for the writer and the commit.
//
// The phases, in this order:
//
//   - baseline: one stream watching the whole account (it receives every event of every renewal);
//   - -streams streams, each watching one due bundle (-mode bundle: the shape of a deploy hook per
//     certificate; every event reaches one stream), or each watching the whole account (-mode
//     account: every event reaches every stream; keep -due small).
//
// Memory per stream is the service's resident memory (VmRSS) with the streams open, less the same
// before they opened, over the streams: the heap and goroutine stacks they hold, as the kernel
// sees them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/internal/benchutil"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "certhosting-streambench:", err)
		os.Exit(1)
	}
}

type config struct {
	stored, due, streams, conns int
	probes, probeRate           int
	mode                        string
	delay                       time.Duration
	extra                       []string
}

func run() error {
	var c config
	flag.IntVar(&c.stored, "stored", 10000, "hosted bundles in each phase's store")
	flag.IntVar(&c.due, "due", 10000, "bundles renewing during each phase (at most -stored)")
	flag.IntVar(&c.streams, "streams", 10000, "streams of the measured phase")
	flag.IntVar(&c.conns, "conns", 10, "client connections the streams are spread over")
	flag.StringVar(&c.mode, "mode", "bundle", "what each stream of the measured phase watches: bundle (one due bundle each, in turn) or account (all of the account's events)")
	flag.DurationVar(&c.delay, "delay", 30*time.Second, "from the seed to the renewals' time: the service must start and every stream open within it")
	flag.IntVar(&c.probes, "probes", 0, "probe events (template updates) while the renewals run; 0: one per due bundle with -mode bundle (each stream gets one), 1,000 with -mode account")
	flag.IntVar(&c.probeRate, "probe-rate", 400, "probe events per second")
	dir := flag.String("dir", "", "work directory, kept afterwards (default: a temporary one, removed afterwards)")
	extra := flag.String("lifecycle-args", "", "more flags for the lifecycle service, space-separated")
	flag.Parse()
	c.extra = strings.Fields(*extra)
	if c.due < 1 || c.due > c.stored || c.streams < 1 || c.conns < 1 {
		return errors.New("want 1 <= -due <= -stored, and -streams and -conns positive")
	}
	if c.mode != "bundle" && c.mode != "account" {
		return fmt.Errorf("-mode: want bundle or account, got %q", c.mode)
	}
	ctx := context.Background()
	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "certhosting-streambench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	bins, err := pair.Build(ctx, filepath.Join(work, "bin"), false)
	if err != nil {
		return err
	}
	zone := dnsserver.NewMemorySource()
	dns, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		return err
	}
	defer dns.Close()

	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("WatchEvents streams: %d hosted stored, %d renewing; measured: %d streams (%s), over %d connections; GOMAXPROCS=%d, %d CPUs; load average %s\n",
		c.stored, c.due, c.streams, c.mode, c.conns, runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	base, err := phase(ctx, filepath.Join(work, "baseline"), bins, dns.Addr(), zone, c, 1, "account")
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	fmt.Printf("  baseline done: %s\n", base.summary())
	many, err := phase(ctx, filepath.Join(work, "streams"), bins, dns.Addr(), zone, c, c.streams, c.mode)
	if err != nil {
		return fmt.Errorf("%d streams: %w", c.streams, err)
	}
	fmt.Printf("  %d streams done: %s\n", c.streams, many.summary())

	fmt.Println()
	fmt.Printf("| | 1 stream (baseline) | %s streams (%s) | ratio |\n|---|---:|---:|---:|\n", benchutil.Thousands(c.streams), c.mode)
	fmt.Printf("| probe events delivered (all streams) | %s | %s | |\n", benchutil.Thousands(len(base.lat)), benchutil.Thousands(len(many.lat)))
	fmt.Printf("| events of every type delivered (all streams) | %s | %s | |\n", benchutil.Thousands(int(base.delivered)), benchutil.Thousands(int(many.delivered)))
	fmt.Printf("| deliveries/s, renewals' time → last receipt | %.0f | %.0f | |\n", base.deliveryRate(), many.deliveryRate())
	for _, q := range []struct {
		name string
		q    float64
	}{{"commit → delivery, p50", 0.5}, {"commit → delivery, p99", 0.99}, {"commit → delivery, max", 1}} {
		b, m := benchutil.Quantile(base.lat, q.q), benchutil.Quantile(many.lat, q.q)
		fmt.Printf("| %s | %s | %s | %.2f |\n", q.name, ms(b), ms(m), float64(m)/float64(b))
	}
	fmt.Printf("| the probes' UpdateApplicationTemplate calls (a write while renewals run), p50 / p99 | %s / %s | %s / %s | |\n",
		ms(benchutil.Quantile(base.calls, 0.5)), ms(benchutil.Quantile(base.calls, 0.99)),
		ms(benchutil.Quantile(many.calls, 0.5)), ms(benchutil.Quantile(many.calls, 0.99)))
	fmt.Printf("| renewals completed, /s | %.0f | %.0f | %.2f |\n", base.renewalRate(), many.renewalRate(), many.renewalRate()/base.renewalRate())
	fmt.Printf("| service RSS, streams open (before they opened) | %.1f MB (%.1f MB) | %.1f MB (%.1f MB) | |\n",
		mb(base.rssOpen), mb(base.rssBefore), mb(many.rssOpen), mb(many.rssBefore))
	fmt.Printf("| service memory per stream | | %.1f KB | |\n", float64(many.rssOpen-many.rssBefore)/float64(c.streams)/1024)
	fmt.Printf("| service peak RSS (VmHWM) | %.1f MB | %.1f MB | |\n", mb(base.rssPeak), mb(many.rssPeak))
	return nil
}

// result is one phase's figures.
type result struct {
	lat                         []time.Duration // every probe event's delivery on every stream, sorted
	measured                    int             // streams that received a probe
	delivered                   int64           // events of every type, on every stream
	lastDelivery                time.Time       // the last event's receipt, on any stream
	renewals                    int
	renewStart, renewEnd        time.Time // the renewals' time, and when the last was seen issued
	probeStart, probeEnd        time.Time
	calls                       []time.Duration // each probe's UpdateApplicationTemplate call, sorted
	rssBefore, rssOpen, rssPeak int64
	open                        time.Duration // to open every stream
}

func (r result) renewalRate() float64 {
	return float64(r.renewals) / r.renewEnd.Sub(r.renewStart).Seconds()
}

// deliveryRate is the events delivered over all streams per second, from the renewals' time (when
// the first could come) to the last receipt: a lower bound on what the service sent.
func (r result) deliveryRate() float64 {
	return float64(r.delivered) / r.lastDelivery.Sub(r.renewStart).Seconds()
}

func (r result) summary() string {
	return fmt.Sprintf("streams opened in %.1fs; %d renewals in %.1fs; probes from +%.1fs to +%.1fs; %d probe deliveries on %d streams, p99 %s",
		r.open.Seconds(), r.renewals, r.renewEnd.Sub(r.renewStart).Seconds(), r.probeStart.Sub(r.renewStart).Seconds(),
		r.probeEnd.Sub(r.renewStart).Seconds(), len(r.lat), r.measured, ms(benchutil.Quantile(r.lat, 0.99)))
}

// probe changes the application template of each bundle in turn (each change commits one
// template_updated event), rate a second, over the connections, and returns each call's time:
// an API write's latency while the renewals' writes fill the service's write groups.
func probe(ctx context.Context, conns []lifecyclev1.LifecycleServiceClient, bundles []string, rate int) ([]time.Duration, error) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	g := new(errgroup.Group)
	g.SetLimit(16)
	calls := make([]time.Duration, len(bundles))
	for i, b := range bundles {
		<-tick.C
		g.Go(func() error {
			start := time.Now()
			_, err := conns[i%len(conns)].UpdateApplicationTemplate(ctx, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: b,
				Contact: &lifecyclev1.Contact{Email: fmt.Sprintf("ops+%d@example.com", i)}})
			calls[i] = time.Since(start)
			return err
		})
	}
	return calls, g.Wait()
}

// stream is one open WatchEvents stream and what it received.
type stream struct {
	bundle   string // "" for the whole account
	start    int64  // the id it starts after (its WatchStartHeader)
	received atomic.Int64
	last     time.Time       // its last receipt; written by its receiving goroutine only
	lat      []time.Duration // written by its receiving goroutine only
	err      error
	done     chan struct{}
}

// phase seeds a store in dir, starts the service, opens n streams (mode bundle or account), lets
// the renewals run and waits for every stream to hold every event the store has for it.
func phase(ctx context.Context, dir string, bins pair.Binaries, resolver string, zone *dnsserver.MemorySource, c config, n int, mode string) (result, error) {
	// probes are the bundles whose templates change while the renewals run: with -mode bundle
	// each stream's bundle once, in a random order; with -mode account, -probes of the due
	// bundles. The baseline changes the same number at the same rate.
	var r result
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, err
	}
	p, err := pair.New(ctx, bins, pair.Options{Dir: dir, LogLevel: "warn", StartTimeout: 5 * time.Minute,
		LifecycleArgs: append([]string{"-rate-limit", "0", "-max-streams-per-account", "0", "-max-concurrent-streams", "0",
			"-ticker-interval", "1s", "-localca-resolver", resolver}, c.extra...)})
	if err != nil {
		return r, err
	}
	defer func() {
		if err := p.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "the service did not stop cleanly: %v\n", err)
		}
	}()
	out, err := p.Admin(ctx, "create-account", "-name", "streambench")
	if err != nil {
		return r, err
	}
	account := strings.TrimSpace(out)
	key, err := p.Admin(ctx, "create-key", "-account", account, "-role", "owner", "-name", "streambench")
	if err != nil {
		return r, err
	}
	lifecycleDB, localcaDB := filepath.Join(dir, "lifecycle.db"), filepath.Join(dir, "localca.db")
	// The seed makes the due bundles renew a minute before at.
	at := time.Now().Add(c.delay + time.Minute).UTC().Truncate(time.Second)
	if err := benchseed.SQLiteWith(ctx, lifecycleDB, benchseed.Options{N: c.stored, Due: c.due, At: at, Account: account, History: true}); err != nil {
		return r, fmt.Errorf("seed: %w", err)
	}
	// The service's master key, written before its first start (pair keeps it), so the records
	// published are the ones its local CA asks for.
	master := secrets.Generate()
	if err := os.WriteFile(filepath.Join(dir, "lifecycle-master.key"), []byte(master), 0o600); err != nil {
		return r, err
	}
	if published, err := benchseed.PublishRecords(ctx, zone, lifecycleDB, localcaDB, master, at); err != nil {
		return r, err
	} else if published != c.due {
		return r, fmt.Errorf("published %d records, want %d", published, c.due)
	}
	ro, err := sqlx.Open("sqlite3", "file:"+lifecycleDB+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return r, err
	}
	defer ro.Close()
	var seededIssuances int64
	if err := ro.Get(&seededIssuances, `SELECT MAX(rowid) FROM issuances`); err != nil {
		return r, err
	}
	var dueBundles []string
	if err := ro.Select(&dueBundles, `SELECT bundle_id FROM bundles ORDER BY rowid LIMIT ?`, c.due); err != nil {
		return r, err
	}
	nProbes := c.probes
	if nProbes == 0 {
		nProbes = 1000
		if c.mode == "bundle" {
			nProbes = min(c.streams, c.due)
		}
	}
	probes := make([]string, nProbes)
	for i := range probes {
		probes[i] = dueBundles[i%len(dueBundles)]
	}
	rand.Shuffle(len(probes), func(i, j int) { probes[i], probes[j] = probes[j], probes[i] })
	if err := p.StartLifecycle(ctx); err != nil {
		return r, err
	}
	pid := p.LifecyclePID()
	if r.rssBefore, _, err = benchutil.Memory(pid); err != nil {
		return r, err
	}

	conns := make([]lifecyclev1.LifecycleServiceClient, c.conns)
	for i := range conns {
		conn, err := grpc.NewClient(p.LifecycleAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(auth.BearerCredentials(strings.TrimSpace(key))))
		if err != nil {
			return r, err
		}
		defer conn.Close()
		conns[i] = lifecyclev1.NewLifecycleServiceClient(conn)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*stream, n)
	began := time.Now()
	g := new(errgroup.Group)
	g.SetLimit(64)
	for i := range streams {
		s := &stream{done: make(chan struct{})}
		if mode == "bundle" {
			s.bundle = dueBundles[i%len(dueBundles)]
		}
		streams[i] = s
		g.Go(func() error { return s.open(sctx, conns[i%len(conns)]) })
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	r.open = time.Since(began)
	if time.Now().After(at.Add(-time.Minute)) {
		return r, fmt.Errorf("the streams opened after the renewals' time: raise -delay (they took %s)", r.open.Round(time.Second))
	}
	time.Sleep(time.Second) // what the streams allocated settles before it is read
	if r.rssOpen, _, err = benchutil.Memory(pid); err != nil {
		return r, err
	}

	// The renewals start at renewAt (at the ticker's next look, within -ticker-interval); the
	// probes run meanwhile.
	renewAt := at.Add(-time.Minute)
	time.Sleep(time.Until(renewAt))
	type probed struct {
		start, end time.Time
		calls      []time.Duration
		err        error
	}
	probeDone := make(chan probed, 1)
	go func() {
		var p probed
		p.start = time.Now()
		p.calls, p.err = probe(ctx, conns, probes, c.probeRate)
		p.end = time.Now()
		probeDone <- p
	}()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		var last int64
		if err := ro.Get(&last, `SELECT MAX(rowid) FROM issuances`); err != nil {
			return r, err
		}
		if last-seededIssuances >= int64(c.due) {
			r.renewals = int(last - seededIssuances)
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%d of %d renewals issued after 15 minutes\n%s", last-seededIssuances, c.due, benchutil.Tail(p.Logs(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.renewStart, r.renewEnd = renewAt, time.Now()
	pr := <-probeDone
	if pr.err != nil {
		return r, fmt.Errorf("probe: %w", pr.err)
	}
	r.probeStart, r.probeEnd, r.calls = pr.start, pr.end, pr.calls
	slices.Sort(r.calls)

	// Every stream must then hold every event the store has for it, after its start.
	minStart := slices.MinFunc(streams, func(a, b *stream) int { return int(a.start - b.start) }).start
	type ev struct {
		ID     int64  `db:"event_id"`
		Bundle string `db:"bundle_id"`
	}
	for quiet := 0; ; {
		var evs []ev
		if err := ro.Select(&evs, `SELECT event_id, bundle_id FROM events WHERE event_id > ? ORDER BY event_id`, minStart); err != nil {
			return r, err
		}
		// The ids of every event and of each bundle's, in order: a stream's due is the count of
		// its ids after its start (one search per stream, not a pass over the events).
		all, byBundle := make([]int64, len(evs)), map[string][]int64{}
		for i, e := range evs {
			all[i] = e.ID
			byBundle[e.Bundle] = append(byBundle[e.Bundle], e.ID)
		}
		missing := 0
		for _, s := range streams {
			ids := all
			if s.bundle != "" {
				ids = byBundle[s.bundle]
			}
			first, _ := slices.BinarySearch(ids, s.start+1)
			want := int64(len(ids) - first)
			if got := s.received.Load(); got > want {
				return r, fmt.Errorf("a stream received %d events, the store holds %d for it", got, want)
			} else if got < want {
				missing++
			}
		}
		if missing == 0 {
			if quiet++; quiet == 2 { // and no event came meanwhile
				break
			}
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("%d streams still miss events", missing)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if _, r.rssPeak, err = benchutil.Memory(pid); err != nil {
		return r, err
	}
	cancel()
	for _, s := range streams {
		<-s.done
		if s.err != nil {
			return r, s.err
		}
		r.lat = append(r.lat, s.lat...)
		r.delivered += s.received.Load()
		if s.last.After(r.lastDelivery) {
			r.lastDelivery = s.last
		}
		if len(s.lat) > 0 {
			r.measured++
		}
	}
	if len(r.lat) < len(probes) {
		return r, fmt.Errorf("%d probe events delivered, want at least one per probe (%d)", len(r.lat), len(probes))
	}
	slices.Sort(r.lat)
	return r, nil
}

// open opens the stream, waits for its headers (the id it starts after) and receives in a
// goroutine of its own until ctx ends.
func (s *stream) open(ctx context.Context, api lifecyclev1.LifecycleServiceClient) error {
	st, err := api.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{BundleId: s.bundle})
	if err != nil {
		return err
	}
	md, err := st.Header()
	if err != nil {
		return err
	}
	if s.start, err = startOf(md); err != nil {
		return err
	}
	go func() {
		defer close(s.done)
		for {
			resp, err := st.Recv()
			at := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					s.err = err
				}
				return
			}
			if e := resp.GetEvent(); e.GetType() == lifecyclev1.EventType_EVENT_TYPE_TEMPLATE_UPDATED {
				s.lat = append(s.lat, at.Sub(e.GetTime().AsTime()))
			}
			s.last = at
			s.received.Add(1)
		}
	}()
	return nil
}

func startOf(md metadata.MD) (int64, error) {
	v := md.Get(lifecycle.WatchStartHeader)
	if len(v) != 1 {
		return 0, fmt.Errorf("WatchEvents headers lack %s", lifecycle.WatchStartHeader)
	}
	return strconv.ParseInt(v[0], 10, 64)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mb(b int64) float64 { return float64(b) / (1 << 20) }
