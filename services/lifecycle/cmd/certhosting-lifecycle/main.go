// Command certhosting-lifecycle runs the lifecycle service
// (certhosting.lifecycle.v1.LifecycleService). `certhosting-lifecycle admin ...` manages accounts
// and keys (the same commands as certhosting-order's, on the shared identity database).
//
// Every flag can also be set with an environment variable: -listen is
// CERTHOSTING_LIFECYCLE_LISTEN, -db is CERTHOSTING_LIFECYCLE_DB, and so on. Flags win over the
// environment.
//
// Transport security (pkg/tlsfiles): -tls-cert and -tls-key serve TLS (re-read when the files
// change); -tls-client-ca requires every client to present a certificate from that CA, and then
// the service-role methods (CreateBundle, CancelBundle) also require the caller's certificate to
// name -order-service-identity: the service key alone no longer proves the order service.
// Plaintext is refused on a listener beyond loopback unless -insecure-plaintext is given.
// `certhosting-lifecycle tls-init -dir DIR` writes a throwaway CA and certificates to try it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/signal"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	// The IANA zone database in the binary, used when the host has none (a minimal container):
	// bundles' maintenance windows name zones (time.LoadLocation), and one must not stop loading
	// where the service is deployed.
	_ "time/tzdata"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/caconfig"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/dnsserver"
	"github.com/certhosting/certhosting/pkg/grpcserver"
	"github.com/certhosting/certhosting/pkg/metrics"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/notify"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

const envPrefix = "CERTHOSTING_LIFECYCLE"

type config struct {
	// phaseDone is the ticker's TickerConfig.PhaseDone (the sweep command's; not a flag).
	phaseDone func(name string, took time.Duration)

	listen        string
	dbPath        string
	dbMaxConns    int
	identityDB    string
	masterKeyFile string
	engineers     string
	authCacheTTL  time.Duration
	rateLimit     float64
	logFormat     string
	logLevel      string
	shutdownGrace time.Duration
	readyFile     string

	tickerInterval time.Duration
	tickerBatch    int
	tickerWorkers  int
	tickerCACalls  int
	lease          time.Duration
	deployDeadline time.Duration
	caRetryBase    time.Duration
	caRetryMax     time.Duration

	localCADB          string
	localCAResolver    string
	localCAMaxValidity time.Duration
	localCACAAIdentity string
	localCADNSTimeout  time.Duration
	localCARecheck     time.Duration
	localCARejectOrg   string

	crlListen string
	crlURL    string

	caConfig      string
	acmeDNSListen string
	acmeDNSZone   string
	acmeDNSNS     string
	debugAddr     string

	tls                  tlsfiles.ServerFlags
	orderServiceIdentity string
	metricsAddr          string
	metricsBundleExpiry  bool
	otlpEndpoint         string

	// Notifications (README, "Notifications"; docs/notifications.md).
	webhookCAFile         string
	webhookTimeout        time.Duration
	webhookAllowPrivate   bool
	smtpAddr              string
	smtpUsername          string
	smtpPasswordFile      string
	smtpFrom              string
	supportEngineerEmails string

	// Limits on streams (docs in README, "Hostile clients").
	maxStreamsPerAccount int
	maxConcurrentStreams uint
}

// parseFlags parses the service's flags; extra adds a subcommand's own.
func parseFlags(args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (config, error) {
	var c config
	fs := flag.NewFlagSet("certhosting-lifecycle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:50052", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&c.dbPath, "db", "var/lifecycle.db", "lifecycle database: a SQLite file, or a postgres:// URL")
	fs.IntVar(&c.dbMaxConns, "db-max-conns", db.DefaultMaxConns, "PostgreSQL connections in the pool of -db (each replica holds its own; the identity and CA databases take 4 each)")
	fs.StringVar(&c.identityDB, "identity-db", auth.DefaultIdentityDB, "identity database shared with the order service (accounts and API keys): a SQLite file both reach, or a postgres:// URL")
	fs.StringVar(&c.masterKeyFile, "master-key-file", "var/lifecycle-master.key", "file holding the base64 master key that encrypts private keys at rest (or set CERTHOSTING_LIFECYCLE_MASTER_KEY to the key itself)")
	fs.StringVar(&c.engineers, "support-engineers", "alice,bob", "comma-separated names of the support engineers: each account gets the least-loaded one, who gets all its cases (their support-role keys carry these names)")
	fs.StringVar(&c.webhookCAFile, "webhook-ca-file", "", "PEM file of root CAs trusted for webhook endpoints in addition to the system's (for endpoints behind a private CA, and tests)")
	fs.BoolVar(&c.webhookAllowPrivate, "webhook-allow-private", false, "let webhook endpoints resolve to loopback, private and link-local addresses (refused by default: an endpoint URL must not reach into the service's own network)")
	fs.DurationVar(&c.webhookTimeout, "webhook-timeout", notify.DefaultTimeout, "longest wait for one webhook delivery or e-mail; a slower endpoint's attempt fails and is retried")
	fs.StringVar(&c.smtpAddr, "smtp-addr", "", "SMTP relay (host:port) for e-mail notifications; empty: no e-mail")
	fs.StringVar(&c.smtpUsername, "smtp-username", "", "SMTP user name (PLAIN authentication, over STARTTLS or to localhost only); empty: no authentication")
	fs.StringVar(&c.smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP password (or set CERTHOSTING_LIFECYCLE_SMTP_PASSWORD)")
	fs.StringVar(&c.smtpFrom, "smtp-from", "certhosting@localhost", "sender address of e-mail notifications")
	fs.StringVar(&c.supportEngineerEmails, "support-engineer-emails", "", "e-mail addresses of the support engineers, name=address comma-separated (alice=alice@example.com,bob=bob@example.com): a case's assignee is e-mailed about it")
	fs.DurationVar(&c.tickerInterval, "ticker-interval", time.Minute, "longest pause of the renewal ticker; it wakes sooner when work is due")
	fs.IntVar(&c.tickerBatch, "ticker-batch", 1000, "rows each ticker sweep reads at a time")
	fs.IntVar(&c.tickerWorkers, "ticker-concurrency", 256, "items (their transactions, and their calls to the built-in local CA) each ticker sweep keeps in flight")
	fs.IntVar(&c.tickerCACalls, "ticker-ca-calls", 32, "calls the ticker keeps in flight to each CA outside the process (ACME, plug-ins)")
	fs.DurationVar(&c.deployDeadline, "deploy-deadline", lifecycle.DefaultDeployDeadline, "how long after its issuance a bundle's certificate may take to reach every deployment target the bundle expects before the ticker opens an urgent case")
	fs.DurationVar(&c.lease, "lease", lifecycle.DefaultLease, "how long the ticker holds the rows it claimed before another replica may take them over")
	fs.DurationVar(&c.caRetryBase, "ca-retry-base", 5*time.Second, "pause after a CA call fails (unreachable, timed out, erroring); it doubles with each failure of the same application")
	fs.DurationVar(&c.caRetryMax, "ca-retry-max", time.Hour, "longest pause between retries of a failing CA call")
	fs.StringVar(&c.caConfig, "ca-config", "", "JSON file naming the CAs (local, acme, plugin) and which serves each product (docs/cas.md); empty: the local CA for every product")
	fs.StringVar(&c.acmeDNSListen, "acme-dns-listen", "", "address of the built-in authoritative DNS server for the delegated ACME zone (UDP and TCP; off when empty; needed by ACME CAs)")
	fs.StringVar(&c.acmeDNSZone, "acme-dns-zone", "", "the delegated zone customers point _acme-challenge CNAMEs into, e.g. acme.certhosting.example")
	fs.StringVar(&c.acmeDNSNS, "acme-dns-ns", "ns1.invalid", "the name of this DNS server, for the zone's SOA and NS records")
	fs.StringVar(&c.localCADB, "localca-db", "var/localca.db", "the local CA's database (its root, intermediate and applications): a SQLite file, or a postgres:// URL")
	fs.StringVar(&c.localCAResolver, "localca-resolver", "127.0.0.1:5354", "DNS server the local CA looks validation records up at (make run starts certhosting-devdns there)")
	fs.StringVar(&c.localCACAAIdentity, "localca-caa-identity", localca.DefaultCAAIdentity, "the local CA's name in CAA records: it issues for a domain only if the domain's CAA records are absent or name it; empty skips the check")
	fs.DurationVar(&c.localCAMaxValidity, "localca-max-validity", localca.DefaultMaxValidity, "longest certificate the local CA issues (4800h = 200 days; short values show renewals within minutes)")
	fs.DurationVar(&c.localCADNSTimeout, "localca-dns-timeout", localca.DefaultDNSTimeout, "how long the DNS must answer that an application's record is absent before the local CA rejects it (failed lookups do not count); default 1h, or half the escalation window of a -localca-max-validity certificate when that is shorter; must be shorter than that window")
	fs.DurationVar(&c.localCARecheck, "localca-recheck", localca.DefaultRecheck, "how often the local CA looks again for a DNS record that is not published yet")
	fs.StringVar(&c.localCARejectOrg, "localca-reject-org", "", "regular expression: OV/EV organization legal names the local CA rejects (to exercise the failure path)")
	fs.StringVar(&c.crlListen, "crl-listen", "127.0.0.1:50080", "HTTP address serving the local CA's certificate revocation list at /crl/local.crl; empty: off")
	fs.StringVar(&c.crlURL, "crl-url", "", "the CRL's address as named in every certificate the local CA issues; default http://<-crl-listen>/crl/local.crl")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", auth.DefaultCacheTTL, "how long a verified API key is cached; a revoked key works at most this long")
	fs.Float64Var(&c.rateLimit, "rate-limit", 2000, "calls per second allowed per account (bursts of twice that); 0 disables the limit")
	fs.IntVar(&c.maxStreamsPerAccount, "max-streams-per-account", auth.DefaultStreamsPerAccount, "streams (WatchEvents) an account may have open at once; the next is refused with ResourceExhausted; 0: no cap")
	fs.UintVar(&c.maxConcurrentStreams, "max-concurrent-streams", grpcserver.DefaultMaxConcurrentStreams, "calls (unary and streaming) open at once on one client connection; a gRPC client queues the calls past it until one ends; 0: no cap")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long unary calls in progress may take to finish on SIGINT/SIGTERM (open streams end at once)")
	fs.StringVar(&c.readyFile, "ready-file", "", "once serving, write the listen address to this file (for scripts that start on port 0)")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve runtime profiles (/debug/pprof/) on this address; empty: off. Bind it to loopback")
	c.tls.Register(fs)
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this address (docs/metrics.md); empty: off. No authentication: bind it to loopback or a monitoring network")
	fs.BoolVar(&c.metricsBundleExpiry, "metrics-bundle-expiry", true, "export each bundle's certificate expiry (one series per bundle); turn off where there are too many bundles")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry traces over OTLP/gRPC (plaintext) to this collector address; empty: tracing off")
	fs.StringVar(&c.orderServiceIdentity, "order-service-identity", tlsfiles.DefaultOrderIdentity, "with -tls-client-ca: the name (DNS name or CommonName) the order service's client certificate must carry for CreateBundle and CancelBundle")
	for _, f := range extra {
		f(fs)
	}
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return c, err
	}
	if c.tls.MutualTLS() && c.orderServiceIdentity == "" {
		return c, errors.New("-order-service-identity: must name the order service's client certificate when -tls-client-ca is set")
	}
	if c.maxStreamsPerAccount < 0 || c.maxConcurrentStreams > math.MaxUint32 {
		return c, fmt.Errorf("-max-streams-per-account and -max-concurrent-streams: want 0 (no cap) or a positive count below 2^32, got %d and %d", c.maxStreamsPerAccount, c.maxConcurrentStreams)
	}
	if c.caRetryBase <= 0 || c.caRetryMax < c.caRetryBase {
		return c, fmt.Errorf("-ca-retry-base and -ca-retry-max: want 0 < base <= max, got %v and %v", c.caRetryBase, c.caRetryMax)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true }) // given on the command line or in the environment
	timeout, err := localDNSTimeout(c.localCADNSTimeout, explicit["localca-dns-timeout"], c.localCAMaxValidity)
	if err != nil {
		return c, err
	}
	c.localCADNSTimeout = timeout
	return c, nil
}

// localDNSTimeout applies lifecycle.VerdictTimeout to the local CA's DNS timeout and maximum
// validity: -localca-dns-timeout given explicitly must be shorter than the escalation window of a
// -localca-max-validity certificate; its default shrinks to half that window.
func localDNSTimeout(timeout time.Duration, explicit bool, maxValidity time.Duration) (time.Duration, error) {
	use, window, ok := lifecycle.VerdictTimeout(timeout, explicit, maxValidity)
	if !ok {
		if timeout <= 0 {
			return 0, fmt.Errorf("-localca-dns-timeout %v: must be positive (and shorter than %v, the escalation window of a -localca-max-validity %v certificate)",
				timeout, window, maxValidity)
		}
		return 0, fmt.Errorf("-localca-dns-timeout %v is not shorter than the escalation window of a -localca-max-validity %v certificate "+
			"(min(7 days, lifetime/10) = %v): a renewal whose record is missing would be escalated as late before the DNS verdict; "+
			"shorten -localca-dns-timeout or lengthen -localca-max-validity", timeout, maxValidity, window)
	}
	return use, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "admin":
		err = auth.RunAdmin(ctx, "certhosting-lifecycle", os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "sweep":
		err = sweep(ctx, os.Args[2:], os.Stdout, os.Stderr)
	case len(os.Args) > 1 && os.Args[1] == "tls-init":
		err = tlsInit(os.Args[2:], time.Now(), os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "certhosting-lifecycle:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.Logger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	// Transport security first: a listener refused for plaintext beyond loopback should say so
	// before any database is opened.
	serverCreds, _, err := cfg.tls.Credentials(cfg.listen, tlsfiles.Options{Log: log.With("component", "tls")})
	if err != nil {
		return err
	}
	if cfg.debugAddr != "" {
		if err := cli.ServeDebug(ctx, cfg.debugAddr, log); err != nil {
			return err
		}
	}
	var crlLis net.Listener
	if cfg.crlListen != "" {
		if crlLis, err = net.Listen("tcp", cfg.crlListen); err != nil {
			return fmt.Errorf("-crl-listen: %w", err)
		}
		defer crlLis.Close()
		cfg.crlListen = crlLis.Addr().String() // port 0 resolved, for the default -crl-url
	}
	stopTracing, err := tracing.Setup(ctx, cfg.otlpEndpoint, "certhosting-lifecycle")
	if err != nil {
		return err
	}
	defer flushTraces(stopTracing, log)
	svc, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.close()
	if cfg.metricsAddr != "" {
		if _, err := metrics.Serve(ctx, cfg.metricsAddr, svc.metrics, log); err != nil {
			return err
		}
	}

	authn := auth.NewInterceptor(svc.verifier, lifecycle.Policy, auth.Limits{Rate: cfg.rateLimit, StreamsPerAccount: cfg.maxStreamsPerAccount})
	opts := grpcserver.Options{MaxConcurrentStreams: uint32(cfg.maxConcurrentStreams), More: []grpc.ServerOption{tracing.ServerOption()}}
	opts.OuterUnary, opts.OuterStream = svc.metrics.ServerInterceptors()
	if serverCreds != nil {
		opts.More = append(opts.More, grpc.Creds(serverCreds))
	}
	if cfg.tls.MutualTLS() {
		// Client certificates are verified: a service key counts only with the order service's.
		authn.WithServiceIdentity(cfg.orderServiceIdentity)
	}
	gs := grpcserver.New(log, authn, opts)
	lifecyclev1.RegisterLifecycleServiceServer(gs.GRPC, lifecycle.NewServer(svc.config, svc.events, svc.ticker.Wake))
	lifecyclev1.RegisterSupportServiceServer(gs.GRPC, lifecycle.NewSupportServer(svc.config))
	lifecyclev1.RegisterAccountServiceServer(gs.GRPC, lifecycle.NewAccountServer(svc.config, svc.identity))
	lifecyclev1.RegisterOperationsServiceServer(gs.GRPC, lifecycle.NewOperationsServer(svc.config, svc.reissuer.Wake))
	lifecyclev1.RegisterWebhookServiceServer(gs.GRPC, lifecycle.NewWebhookServer(svc.config, svc.notify.Wake))

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	log.Info("lifecycle service listening", "addr", lis.Addr().String(), "db", db.Redacted(cfg.dbPath),
		"tls", cfg.tls.Enabled(), "mutual_tls", cfg.tls.MutualTLS())
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(lis.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gs.Run(ctx, lis, cfg.shutdownGrace) })
	g.Go(func() error { return svc.ticker.Run(ctx) })
	g.Go(func() error { return svc.reissuer.Run(ctx) })
	g.Go(func() error { return svc.notify.Run(ctx) })
	if crlLis != nil && svc.localCA != nil {
		log.Info("local CA's revocation list served", "url", crlURL(cfg))
		g.Go(func() error { return serveCRL(ctx, crlLis, svc.localCA, log) })
	}
	g.Go(func() error {
		lifecycle.FollowCommits(ctx, svc.config.Store, svc.events, lifecycle.FollowInterval)
		return nil
	})
	err = g.Wait()
	log.Info("lifecycle service stopped")
	return err
}

// service is everything the server and the ticker run on, opened from the configuration.
type service struct {
	config   lifecycle.Config
	localCA  *localca.CA // when a product is routed to it
	ticker   *lifecycle.Ticker
	reissuer *lifecycle.Reissuer
	notify   *notify.Dispatcher
	events   *lifecycle.EventHub
	verifier *auth.Verifier
	identity *auth.Store
	metrics  *metrics.Set
	closers  []func()
}

func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// open wires the service: databases, master key, CAs (and the delegated DNS zone they may need),
// the ticker.
func open(ctx context.Context, cfg config, log *slog.Logger) (_ *service, err error) {
	svc := &service{events: lifecycle.NewEventHub()}
	defer func() {
		if err != nil {
			svc.close()
		}
	}()
	clk := clockwork.NewRealClock()

	dbOpts := store.DBOptions()
	dbOpts.Logger, dbOpts.MaxConns = log, cfg.dbMaxConns
	database, err := db.Open(ctx, cfg.dbPath, dbOpts)
	if err != nil {
		return nil, err
	}
	svc.closers = append(svc.closers, func() { database.Close() })
	identity, err := auth.OpenStore(ctx, cfg.identityDB, clk, log)
	if err != nil {
		return nil, fmt.Errorf("identity database: %w", err)
	}
	svc.closers = append(svc.closers, func() { identity.Close() })
	svc.verifier = auth.NewVerifier(identity, clk, cfg.authCacheTTL)
	svc.identity = identity

	keys, err := secrets.Load("CERTHOSTING_LIFECYCLE_MASTER_KEY", cfg.masterKeyFile)
	if err != nil {
		return nil, err
	}
	caFile := caconfig.Default()
	if cfg.caConfig != "" {
		if caFile, err = caconfig.Load(cfg.caConfig); err != nil {
			return nil, err
		}
	}
	if err := checkPluginTransport(caFile, cfg.tls.InsecurePlaintext); err != nil {
		return nil, err
	}
	local := func() (ca.Client, io.Closer, error) {
		var orgRule localca.OrganizationRule
		if cfg.localCARejectOrg != "" {
			var err error
			if orgRule.RejectLegalName, err = regexp.Compile(cfg.localCARejectOrg); err != nil {
				return nil, nil, fmt.Errorf("-localca-reject-org: %w", err)
			}
		}
		authority, err := localca.Open(ctx, localca.Config{
			DBPath: cfg.localCADB, Box: keys, Clock: clk, Resolver: cfg.localCAResolver,
			MaxValidity: cfg.localCAMaxValidity, DNSTimeout: cfg.localCADNSTimeout, Recheck: cfg.localCARecheck,
			OrganizationRule: orgRule, CAAIdentity: cfg.localCACAAIdentity, Logger: log.With("component", "localca"),
			CRLURL: crlURL(cfg),
		})
		svc.localCA = authority
		return authority, authority, err
	}
	// Every commit with events wakes WatchEvents streams and the notification dispatcher.
	// The dispatcher is made after the store: until then, the pointer is nil and nothing is woken.
	var wake atomic.Pointer[notify.Dispatcher]
	st := store.New(database, func() {
		svc.events.Notify()
		if d := wake.Load(); d != nil {
			d.Wake()
		}
	})
	if n, err := st.BackfillDomains(ctx); err != nil {
		return nil, fmt.Errorf("filling the domain filters' names: %w", err)
	} else if n > 0 {
		log.Info("domain filters filled for instances applied for before this version", "instances", n)
	}
	var zone *lifecycle.DelegatedZone
	if caFile.UsesType(caconfig.TypeACME) {
		if cfg.acmeDNSListen == "" || cfg.acmeDNSZone == "" {
			return nil, fmt.Errorf("the CA configuration routes products to ACME, which needs the delegated DNS zone: set -acme-dns-listen and -acme-dns-zone (docs/cas.md)")
		}
		if zone, err = lifecycle.NewDelegatedZone(st, clk, log.With("component", "dnszone"), cfg.acmeDNSZone, cfg.acmeDNSNS); err != nil {
			return nil, fmt.Errorf("-acme-dns-zone: %w", err)
		}
		dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: cfg.acmeDNSListen, Source: zone, Logger: log.With("component", "dnszone")})
		if err != nil {
			return nil, fmt.Errorf("-acme-dns-listen: %w", err)
		}
		svc.closers = append(svc.closers, func() { dnsSrv.Close() })
		log.Info("delegated DNS zone serving", "zone", zone.Zone(), "addr", dnsSrv.Addr())
	}
	svc.metrics = metrics.New()
	dial := append(svc.metrics.DialOptions(), tracing.DialOption())
	cas, closers, err := authorities(ctx, caFile, local, zone, keys, clk, log, dial)
	if err != nil {
		return nil, err
	}
	for _, c := range closers {
		svc.closers = append(svc.closers, func() { c.Close() })
	}
	engineers := splitList(cfg.engineers)
	if len(engineers) == 0 {
		return nil, fmt.Errorf("-support-engineers: at least one engineer is required")
	}
	svc.config = lifecycle.Config{Store: st, Clock: clk, Log: log, CAs: cas, Keys: keys, Engineers: engineers,
		Metrics: lifecycle.NewMetrics(svc.metrics.Registry), CARateLimits: caFile.IssuanceRates()}
	svc.metrics.Registry.MustRegister(lifecycle.NewStoreCollector(st, clk.Now, log, cfg.metricsBundleExpiry))
	svc.ticker = lifecycle.NewTicker(svc.config, lifecycle.TickerConfig{Interval: cfg.tickerInterval, Batch: cfg.tickerBatch, Concurrency: cfg.tickerWorkers, CACalls: cfg.tickerCACalls, Lease: cfg.lease,
		DeployDeadline: cfg.deployDeadline, Backoff: backoff.Policy{Base: cfg.caRetryBase, Max: cfg.caRetryMax}, PhaseDone: cfg.phaseDone})
	svc.reissuer = lifecycle.NewReissuer(svc.config, svc.ticker.Wake)
	dispatcher, err := notifier(cfg, st, clk, keys, log)
	if err != nil {
		return nil, err
	}
	svc.notify = dispatcher
	wake.Store(dispatcher)
	return svc, nil
}

// notifier wires the notification dispatcher from the -webhook-* and -smtp-* flags.
func notifier(cfg config, st *store.Store, clk clockwork.Clock, keys *secrets.Box, log *slog.Logger) (*notify.Dispatcher, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // the endpoint's own address is what PublicOnly checks
	transport.DialContext = notify.Dialer(cfg.webhookAllowPrivate).DialContext
	if cfg.webhookCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.webhookCAFile)
		if err != nil {
			return nil, fmt.Errorf("-webhook-ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-webhook-ca-file: no PEM certificate in %s", cfg.webhookCAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	engineers := map[string]string{}
	for _, pair := range splitList(cfg.supportEngineerEmails) {
		name, addr, ok := strings.Cut(pair, "=")
		if _, err := mail.ParseAddress(addr); !ok || name == "" || err != nil {
			return nil, fmt.Errorf("-support-engineer-emails: %q is not name=address", pair)
		}
		engineers[name] = addr
	}
	o := notify.Options{Store: st, Clock: clk, Log: log.With("component", "notify"), Keys: keys,
		HTTP: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a redirect is an answer, not a new destination
		}},
		Engineers: engineers, Timeout: cfg.webhookTimeout}
	if cfg.smtpAddr != "" {
		password := os.Getenv(envPrefix + "_SMTP_PASSWORD")
		if cfg.smtpPasswordFile != "" {
			b, err := os.ReadFile(cfg.smtpPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("-smtp-password-file: %w", err)
			}
			password = strings.TrimSpace(string(b))
		}
		if _, err := mail.ParseAddress(cfg.smtpFrom); err != nil {
			return nil, fmt.Errorf("-smtp-from: %w", err)
		}
		o.Mail = &notify.SMTP{Addr: cfg.smtpAddr, Username: cfg.smtpUsername, Password: password, From: cfg.smtpFrom}
	}
	return notify.New(o), nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// sweep runs one tick of the renewal ticker and exits: `certhosting-lifecycle sweep [flags]`, with
// the service's own flags (its database, CAs, master key). For an operator who wants the due work
// done now, and for the renewal benchmark, which times it and reads its peak memory. -at runs the
// tick as of another time (the benchmark's certificates are due then). It prints one JSON line:
// what the tick did, how long it took, and the process's peak resident memory.
func sweep(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	at := time.Now()
	var cpuProfile string
	atFlag := func(fs *flag.FlagSet) {
		fs.Func("at", "run the tick as of this time (RFC 3339) instead of now", func(s string) error {
			t, err := time.Parse(time.RFC3339, s)
			at = t
			return err
		})
		fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the tick to this file")
	}
	cfg, err := parseFlags(args, stderr, atFlag)
	if err != nil {
		return err
	}
	log, err := cli.Logger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	// Each sweep's report is the difference from the end of the sweep before it, or from the
	// service's start-up for the first (set once open returns, so it is not counted).
	var (
		phases  []lifecycle.PhaseReport
		lastCPU time.Duration
		lastW   db.WriterStats
	)
	cfg.phaseDone = func(name string, took time.Duration) {
		cpu, w := processCPU(), db.WriterTotals()
		if took >= time.Millisecond {
			d := w.Sub(lastW)
			phases = append(phases, lifecycle.PhaseReport{Name: name, MS: ms(took), CPUMS: ms(cpu - lastCPU),
				WriterBusyMS: ms(d.Busy), Groups: d.Groups, Writes: d.Writes})
		}
		lastCPU, lastW = cpu, w
	}
	svc, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer svc.close()
	lastCPU, lastW = processCPU(), db.WriterTotals()
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	began := time.Now()
	stats, err := svc.ticker.Tick(ctx, at)
	took := time.Since(began)
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	out, _ := json.Marshal(struct {
		At         time.Time               `json:"at"`
		DurationMS float64                 `json:"duration_ms"`
		Stats      lifecycle.TickStats     `json:"stats"`
		MaxRSSKB   int64                   `json:"max_rss_kb"`
		Phases     []lifecycle.PhaseReport `json:"phases"`
	}{at, ms(took), stats, ru.Maxrss, phases})
	fmt.Fprintln(stdout, string(out))
	return err
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// crlURL is the local CA's CRL distribution point: -crl-url, or the address -crl-listen serves.
func crlURL(cfg config) string {
	if cfg.crlURL != "" || cfg.crlListen == "" {
		return cfg.crlURL
	}
	return "http://" + cfg.crlListen + "/crl/local.crl"
}

// serveCRL serves the local CA's revocation list (DER, application/pkix-crl, RFC 5280 section
// 4.2.1.13) at /crl/local.crl until ctx ends. The list is made afresh for each request
// (localca.CA.CRL), so a revocation is on it at once.
func serveCRL(ctx context.Context, lis net.Listener, authority *localca.CA, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crl/local.crl", func(w http.ResponseWriter, r *http.Request) {
		der, err := authority.CRL(r.Context())
		if err != nil {
			log.Error("CRL not served", "err", err)
			http.Error(w, "the revocation list is unavailable; try again", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Header().Set("Cache-Control", "max-age=60")
		_, _ = w.Write(der)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// tlsInit writes a throwaway CA and certificates for trying TLS and mutual TLS on one machine:
// `certhosting-lifecycle tls-init -dir var/tls [-host NAME]... [-order-service-identity NAME]`.
func tlsInit(args []string, now time.Time, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certhosting-lifecycle tls-init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "var/tls", "directory for the files (created 0700; files there are replaced)")
	identity := fs.String("order-service-identity", tlsfiles.DefaultOrderIdentity, "the name in the order service's client certificate")
	var hosts []string
	fs.Func("host", "another name or IP address for the server certificate, besides localhost, 127.0.0.1 and ::1 (repeatable)", func(h string) error {
		hosts = append(hosts, h)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := tlsfiles.TestPKI(*dir, hosts, *identity, now); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "test CA and certificates (valid %v) written to %s: %s; server %s, %s; order service (%s) %s, %s; tools (%s) %s, %s\n",
		tlsfiles.TestPKIValidity, *dir, tlsfiles.CAFile, tlsfiles.ServerCertFile, tlsfiles.ServerKeyFile,
		*identity, tlsfiles.OrderCertFile, tlsfiles.OrderKeyFile, tlsfiles.ClientIdentity, tlsfiles.ClientCertFile, tlsfiles.ClientKeyFile)
	return nil
}

// flushTraces sends the spans still buffered, for up to 5 s, as the process stops.
func flushTraces(stop func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("flushing traces", "err", err)
	}
}
