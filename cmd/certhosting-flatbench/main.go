// Command certhosting-flatbench measures what the lifecycle service's everyday work costs as its
// store grows (issue 14, target 3): with 1,000,000 hosted certificates stored, each of these
// should be within 1.2× of the same with 10,000 stored: a ticker sweep with nothing due,
// ListCertificates and ListBundles (first page and 100th page), GetBundle, WatchEvents delivery,
// and the service's resident memory while serving (under 150 MB).
//
// For each -stored size it seeds a lifecycle database (internal/benchseed with History: each
// bundle's names and history events too, as the service leaves them) whose bundles belong to an
// account the command creates, with an owner key for it, through the admin subcommand the pair
// uses; then it starts the real lifecycle service on it (internal/pair). All the sizes' services
// run at once, and every operation is measured on them in turn, one call at a time: repetition r
// calls the smallest store first when r is even and the largest first when it is odd. A ratio
// thus compares figures taken over the same minutes of the same (shared) machine, rather than
// figures of two runs that other work may have slowed differently.
//
// The operations, each timed by a real gRPC client on loopback, call to response:
//
//   - sweep, nothing due: `certhosting-lifecycle sweep -at now` on the service's own database and
//     flags, beside the running service: the tick's duration as the subcommand prints it (from the
//     tick's start to its end, not the process's start, which checks the store);
//   - ListCertificates and ListBundles, page_size -page-size, first page and page -page (the
//     page token of page -page, from one walk through the pages before it, reused for every call);
//   - GetBundle of a bundle drawn at random from the whole store (by rowid, read beforehand);
//   - WatchEvents delivery: one stream per service, opened before (its headers received); each
//     repetition calls UpdateApplicationTemplate (a new contact) on a random bundle and waits for
//     its template_updated event on the stream. The figure is the event's own time (which the
//     service stamps just before queueing the write transaction that commits it) to the moment
//     the client has it: an upper bound on commit to receipt that also holds the wait for the
//     writer and the commit itself;
//   - the service's resident memory (VmRSS in /proc/PID/status) after all of the above, and its
//     peak (VmHWM).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/benchseed"
	"github.com/certhosting/certhosting/internal/benchutil"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/auth"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "certhosting-flatbench:", err)
		os.Exit(1)
	}
}

// limit is the bound on each ratio, and rssLimit its bound on the service's memory.
const (
	limit    = 1.2
	rssLimit = 150 << 20
)

type config struct {
	due      int
	reps     int
	sweeps   int
	pageSize int
	page     int
	extra    []string
}

func run() error {
	storedFlag := flag.String("stored", "10000,1000000", "comma-separated store sizes (hosted certificates, one bundle each) to compare; the first is the reference")
	var c config
	flag.IntVar(&c.due, "due", 0, "certificates at their renewal time in each store (the sweep measured is the one with these due; 0: nothing due)")
	flag.IntVar(&c.reps, "n", 300, "calls of each RPC measured per store")
	flag.IntVar(&c.sweeps, "sweeps", 15, "sweeps measured per store (each a process of its own)")
	flag.IntVar(&c.pageSize, "page-size", 50, "page_size of the List calls")
	flag.IntVar(&c.page, "page", 100, "the deep page measured besides the first")
	dir := flag.String("dir", "", "work directory, kept afterwards (default: a temporary one, removed afterwards); use a disk, not tmpfs")
	extra := flag.String("lifecycle-args", "", "more flags for the lifecycle services and sweeps, space-separated")
	flag.Parse()
	c.extra = strings.Fields(*extra)
	var sizes []int
	for _, f := range strings.Split(*storedFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < c.due || n < c.pageSize*c.page {
			return fmt.Errorf("-stored: %q must be a size of at least -due and of -page pages of -page-size bundles", f)
		}
		sizes = append(sizes, n)
	}
	if c.reps < 1 || c.sweeps < 1 {
		return errors.New("-n and -sweeps must be positive")
	}
	ctx := context.Background()

	work := *dir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "certhosting-flatbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	bins, err := pair.Build(ctx, filepath.Join(work, "bin"), false)
	if err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("flat costs: stores of %v hosted certificates, %d due; %d calls per RPC, %d sweeps; GOMAXPROCS=%d, %d CPUs; load average %s\n",
		sizes, c.due, c.reps, c.sweeps, runtime.GOMAXPROCS(0), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))

	var stores []*stack
	defer func() {
		for _, s := range stores {
			s.close()
		}
	}()
	for _, n := range sizes {
		s, err := start(ctx, filepath.Join(work, strconv.Itoa(n)), bins, n, c)
		if err != nil {
			return err
		}
		stores = append(stores, s)
		fmt.Printf("  stored %9d: seeded in %6.1fs (%5.0f MB database); service serving %5.1fs after its start\n",
			n, s.seed.Seconds(), float64(s.dbSize)/1e6, s.startup.Seconds())
	}
	for _, s := range stores {
		if err := s.prepare(ctx, c); err != nil {
			return fmt.Errorf("stored %d: %w", s.n, err)
		}
	}

	ops := []op{
		{name: "ListCertificates, first page", call: (*stack).listCertificatesFirst},
		{name: fmt.Sprintf("ListCertificates, page %d", c.page), call: (*stack).listCertificatesDeep},
		{name: "ListBundles, first page", call: (*stack).listBundlesFirst},
		{name: fmt.Sprintf("ListBundles, page %d", c.page), call: (*stack).listBundlesDeep},
		{name: "GetBundle, random bundle", call: (*stack).getBundle},
		{name: "WatchEvents delivery", call: (*stack).watchDelivery},
	}
	// Warm up every call path (connections, prepared statements, the services' caches) without
	// recording.
	for _, o := range ops {
		if _, err := measure(ctx, stores, 20, o.call); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
	}
	results := make([][][]time.Duration, 0, len(ops)+1) // op, store, samples
	sweepName := "ticker sweep, nothing due"
	if c.due > 0 {
		sweepName = fmt.Sprintf("ticker sweep, %d due", c.due)
	}
	names := []string{sweepName}
	sweeps, err := measure(ctx, stores, c.sweeps, func(s *stack, ctx context.Context, _ int) (time.Duration, error) {
		return s.sweep(ctx, c)
	})
	if err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	results = append(results, sweeps)
	for _, o := range ops {
		d, err := measure(ctx, stores, c.reps, o.call)
		if err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		names = append(names, o.name)
		results = append(results, d)
	}
	rss := make([][2]int64, len(stores))
	for i, s := range stores {
		if rss[i][0], rss[i][1], err = benchutil.Memory(s.pair.LifecyclePID()); err != nil {
			return err
		}
	}

	// The table: median and p99 of each store, the ratio of the medians to the first store's.
	fmt.Println()
	head, rule := "| op |", "|---|"
	for _, s := range stores {
		head += fmt.Sprintf(" %s stored, median / p99 |", benchutil.Thousands(s.n))
		rule += "---:|"
	}
	for _, s := range stores[1:] {
		head += fmt.Sprintf(" ratio %s / %s |", benchutil.Thousands(s.n), benchutil.Thousands(stores[0].n))
		rule += "---:|"
	}
	fmt.Println(head)
	fmt.Println(rule)
	var over []string
	for i, name := range names {
		line := "| " + name + " |"
		for _, d := range results[i] {
			line += fmt.Sprintf(" %s / %s |", ms(benchutil.Quantile(d, 0.5)), ms(benchutil.Quantile(d, 0.99)))
		}
		for j := 1; j < len(stores); j++ {
			r := float64(benchutil.Quantile(results[i][j], 0.5)) / float64(benchutil.Quantile(results[i][0], 0.5))
			line += fmt.Sprintf(" %s |", flag12(r))
			if r > limit {
				over = append(over, fmt.Sprintf("%s at %s stored (%.2f×)", name, benchutil.Thousands(stores[j].n), r))
			}
		}
		fmt.Println(line)
	}
	line := "| lifecycle service RSS while serving (peak) |"
	for _, m := range rss {
		line += fmt.Sprintf(" %.0f MB (%.0f MB) |", float64(m[0])/(1<<20), float64(m[1])/(1<<20))
	}
	for j := 1; j < len(stores); j++ {
		r := float64(rss[j][0]) / float64(rss[0][0])
		line += fmt.Sprintf(" %s |", flag12(r))
		if r > limit {
			over = append(over, fmt.Sprintf("RSS at %s stored (%.2f×)", benchutil.Thousands(stores[j].n), r))
		}
	}
	fmt.Println(line)
	for j, m := range rss {
		if m[0] >= rssLimit {
			over = append(over, fmt.Sprintf("RSS at %s stored: %.0f MB, not under 150 MB", benchutil.Thousands(stores[j].n), float64(m[0])/(1<<20)))
		}
	}
	fmt.Println()
	if len(over) == 0 {
		fmt.Printf("every ratio within %.1f×, and every service under 150 MB\n", limit)
	} else {
		fmt.Printf("over the target (ratio of medians above %.1f×, or RSS at 150 MB or more):\n", limit)
		for _, o := range over {
			fmt.Println("  " + o)
		}
	}
	return nil
}

type op struct {
	name string
	call func(s *stack, ctx context.Context, rep int) (time.Duration, error)
}

// measure calls each store's call reps times, the stores in turn (smallest first on even
// repetitions, largest first on odd ones), and returns each store's durations, sorted.
func measure(ctx context.Context, stores []*stack, reps int, call func(*stack, context.Context, int) (time.Duration, error)) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(stores))
	for r := range reps {
		for k := range stores {
			i := k
			if r%2 == 1 {
				i = len(stores) - 1 - k
			}
			d, err := call(stores[i], ctx, r)
			if err != nil {
				return nil, fmt.Errorf("stored %d: %w", stores[i].n, err)
			}
			out[i] = append(out[i], d)
		}
	}
	for _, d := range out {
		slices.Sort(d)
	}
	return out, nil
}

// stack is one store and the service serving it.
type stack struct {
	n        int
	pageSize int
	dir      string
	pair     *pair.Pair
	lbin     string
	account  string
	conn     *grpc.ClientConn
	api      lifecyclev1.LifecycleServiceClient
	seed     time.Duration
	startup  time.Duration
	dbSize   int64

	// Filled by prepare.
	bundles         []string // drawn at random from the whole store
	certToken       string   // page token of ListCertificates' deep page
	bundleToken     string   // of ListBundles'
	events          chan received
	watchCancel     context.CancelFunc
	templateCounter int
}

type received struct {
	event *lifecyclev1.LifecycleEvent
	at    time.Time
	err   error
}

// start seeds a store of n hosted certificates in dir and starts the lifecycle service on it.
func start(ctx context.Context, dir string, bins pair.Binaries, n int, c config) (*stack, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := pair.New(ctx, bins, pair.Options{Dir: dir, LogLevel: "warn", StartTimeout: 15 * time.Minute,
		LifecycleArgs: append([]string{"-rate-limit", "0"}, c.extra...)})
	if err != nil {
		return nil, err
	}
	s := &stack{n: n, pageSize: c.pageSize, dir: dir, pair: p, lbin: bins.Lifecycle}
	out, err := p.Admin(ctx, "create-account", "-name", "flatbench")
	if err != nil {
		return nil, err
	}
	s.account = strings.TrimSpace(out)
	key, err := p.Admin(ctx, "create-key", "-account", s.account, "-role", "owner", "-name", "flatbench")
	if err != nil {
		return nil, err
	}
	began := time.Now()
	db := filepath.Join(dir, "lifecycle.db")
	if err := benchseed.SQLiteWith(ctx, db, benchseed.Options{N: n, Due: c.due, At: time.Now().UTC().Truncate(time.Second),
		Account: s.account, History: true}); err != nil {
		return nil, fmt.Errorf("seed %d: %w", n, err)
	}
	s.seed = time.Since(began)
	if fi, err := os.Stat(db); err == nil {
		s.dbSize = fi.Size()
	}
	began = time.Now()
	if err := p.StartLifecycle(ctx); err != nil {
		return nil, err
	}
	s.startup = time.Since(began)
	if s.conn, err = grpc.NewClient(p.LifecycleAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(auth.BearerCredentials(strings.TrimSpace(key)))); err != nil {
		return nil, err
	}
	s.api = lifecyclev1.NewLifecycleServiceClient(s.conn)
	return s, nil
}

func (s *stack) close() {
	if s.watchCancel != nil {
		s.watchCancel()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if err := s.pair.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stored %d: the service did not stop cleanly: %v\n%s", s.n, err, benchutil.Tail(s.pair.Logs(), 20))
	}
}

// prepare draws the random bundles, walks to the deep pages, and opens the event stream.
func (s *stack) prepare(ctx context.Context, c config) error {
	ro, err := sqlx.Open("sqlite3", "file:"+filepath.Join(s.dir, "lifecycle.db")+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return err
	}
	defer ro.Close()
	var rows int64
	if err := ro.Get(&rows, `SELECT MAX(rowid) FROM bundles`); err != nil {
		return err
	}
	// Enough for the warm-up and the measured calls of GetBundle and of WatchEvents.
	for len(s.bundles) < 2*(c.reps+20) {
		var id string
		if err := ro.Get(&id, `SELECT bundle_id FROM bundles WHERE rowid = ?`, 1+rand.Int64N(rows)); err != nil {
			return err
		}
		s.bundles = append(s.bundles, id)
	}
	for p := 1; p < c.page; p++ {
		cr, err := s.api.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{PageSize: int32(c.pageSize), PageToken: s.certToken})
		if err != nil {
			return err
		}
		br, err := s.api.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{PageSize: int32(c.pageSize), PageToken: s.bundleToken})
		if err != nil {
			return err
		}
		if len(cr.GetCertificates()) != c.pageSize || len(br.GetBundles()) != c.pageSize {
			return fmt.Errorf("page %d holds %d certificates and %d bundles, want %d each", p, len(cr.GetCertificates()),
				len(br.GetBundles()), c.pageSize)
		}
		s.certToken, s.bundleToken = cr.GetNextPageToken(), br.GetNextPageToken()
	}
	wctx, cancel := context.WithCancel(ctx)
	s.watchCancel = cancel
	stream, err := s.api.WatchEvents(wctx, &lifecyclev1.WatchEventsRequest{})
	if err != nil {
		return err
	}
	if _, err := stream.Header(); err != nil { // from here on, every committed event reaches the stream
		return err
	}
	s.events = make(chan received, 64)
	go func() {
		for {
			resp, err := stream.Recv()
			at := time.Now()
			if err != nil {
				if wctx.Err() == nil {
					s.events <- received{err: err}
				}
				return
			}
			s.events <- received{event: resp.GetEvent(), at: at}
		}
	}()
	return nil
}

func timed(call func() error) (time.Duration, error) {
	t := time.Now()
	err := call()
	return time.Since(t), err
}

func (s *stack) listCertificatesFirst(ctx context.Context, _ int) (time.Duration, error) {
	return s.listCertificates(ctx, "")
}

func (s *stack) listCertificatesDeep(ctx context.Context, _ int) (time.Duration, error) {
	return s.listCertificates(ctx, s.certToken)
}

func (s *stack) listCertificates(ctx context.Context, token string) (time.Duration, error) {
	var resp *lifecyclev1.ListCertificatesResponse
	d, err := timed(func() (err error) {
		resp, err = s.api.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{PageSize: int32(s.pageSize), PageToken: token})
		return err
	})
	if err == nil && len(resp.GetCertificates()) != s.pageSize {
		err = fmt.Errorf("ListCertificates returned %d certificates", len(resp.GetCertificates()))
	}
	return d, err
}

func (s *stack) listBundlesFirst(ctx context.Context, _ int) (time.Duration, error) {
	return s.listBundles(ctx, "")
}

func (s *stack) listBundlesDeep(ctx context.Context, _ int) (time.Duration, error) {
	return s.listBundles(ctx, s.bundleToken)
}

func (s *stack) listBundles(ctx context.Context, token string) (time.Duration, error) {
	var resp *lifecyclev1.ListBundlesResponse
	d, err := timed(func() (err error) {
		resp, err = s.api.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{PageSize: int32(s.pageSize), PageToken: token})
		return err
	})
	if err == nil && len(resp.GetBundles()) != s.pageSize {
		err = fmt.Errorf("ListBundles returned %d bundles", len(resp.GetBundles()))
	}
	return d, err
}

func (s *stack) getBundle(ctx context.Context, rep int) (time.Duration, error) {
	id := s.bundles[rep%len(s.bundles)]
	var resp *lifecyclev1.GetBundleResponse
	d, err := timed(func() (err error) {
		resp, err = s.api.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: id})
		return err
	})
	if err == nil && len(resp.GetBundle().GetCertificates()) != 2 {
		err = fmt.Errorf("GetBundle %s returned %d certificates", id, len(resp.GetBundle().GetCertificates()))
	}
	return d, err
}

// watchDelivery changes a random bundle's template and returns the time from its event's
// timestamp to the stream's delivery of it.
func (s *stack) watchDelivery(ctx context.Context, rep int) (time.Duration, error) {
	s.templateCounter++
	id := s.bundles[(len(s.bundles)-1-rep)%len(s.bundles)]
	if _, err := s.api.UpdateApplicationTemplate(ctx, &lifecyclev1.UpdateApplicationTemplateRequest{BundleId: id,
		Contact: &lifecyclev1.Contact{Email: fmt.Sprintf("ops+%d@example.com", s.templateCounter)}}); err != nil {
		return 0, err
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-s.events:
			if r.err != nil {
				return 0, fmt.Errorf("WatchEvents: %w", r.err)
			}
			if r.event.GetBundleId() == id && r.event.GetType() == lifecyclev1.EventType_EVENT_TYPE_TEMPLATE_UPDATED {
				return r.at.Sub(r.event.GetTime().AsTime()), nil
			}
		case <-timeout:
			return 0, fmt.Errorf("no template_updated event for %s within 30s", id)
		}
	}
}

// sweep runs one tick of the service's ticker as of now in a process of its own, on the service's
// database and flags, and returns the tick's duration as the process reports it.
func (s *stack) sweep(ctx context.Context, c config) (time.Duration, error) {
	args := append([]string{"sweep",
		"-db", filepath.Join(s.dir, "lifecycle.db"), "-identity-db", s.pair.IdentityDB,
		"-master-key-file", filepath.Join(s.dir, "lifecycle-master.key"), "-localca-db", filepath.Join(s.dir, "localca.db"),
		"-log-level", "warn", "-at", time.Now().UTC().Format(time.RFC3339)}, c.extra...)
	cmd := exec.CommandContext(ctx, s.lbin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("sweep: %v\n%s", err, stderr.String())
	}
	var out struct {
		DurationMS float64        `json:"duration_ms"`
		Stats      map[string]int `json:"stats"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return 0, fmt.Errorf("sweep output %q: %w", stdout.String(), err)
	}
	// The first sweep of a store with certificates due starts their renewals; later ones find
	// them under way. With nothing due, nothing may happen.
	if c.due == 0 {
		for k, v := range out.Stats {
			if v != 0 {
				return 0, fmt.Errorf("a sweep with nothing due did something: %s %d", k, v)
			}
		}
	}
	return time.Duration(out.DurationMS * float64(time.Millisecond)), nil
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
}

// flag12 formats a ratio, bold and marked when it is above the limit.
func flag12(r float64) string {
	if r > limit {
		return fmt.Sprintf("**%.2f** (> %.1f)", r, limit)
	}
	return fmt.Sprintf("%.2f", r)
}
