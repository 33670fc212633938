// Command certhosting-order runs the order service (certhosting.order.v1.OrderService) and its
// outbox relay to the lifecycle service. `certhosting-order admin ...` manages accounts and keys;
// `certhosting-order outbox [-retry]` lists the purchases not yet delivered to the lifecycle
// service, with their last error, and can retry them at once.
//
// Every flag can also be set with an environment variable: -listen is CERTHOSTING_ORDER_LISTEN,
// -lifecycle-addr is CERTHOSTING_ORDER_LIFECYCLE_ADDR, and so on. Flags win over the environment.
//
// Transport security (pkg/tlsfiles): -tls-cert and -tls-key serve TLS (re-read when the files
// change), -tls-client-ca requires client certificates. Towards the lifecycle service,
// -lifecycle-ca turns on TLS and -lifecycle-tls-cert/-lifecycle-tls-key mutual TLS, which is what
// proves to a lifecycle service run with -tls-client-ca that the relay's CreateBundle comes from
// this service. Plaintext is refused beyond loopback, both for -listen and for -lifecycle-addr,
// unless -insecure-plaintext is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/grpcclient"
	"github.com/certhosting/certhosting/pkg/grpcserver"
	"github.com/certhosting/certhosting/pkg/metrics"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/order"
	"github.com/certhosting/certhosting/services/order/store"
)

const envPrefix = "CERTHOSTING_ORDER"

type config struct {
	listen           string
	dbPath           string
	dbMaxConns       int
	identityDB       string
	lifecycleAddr    string
	lifecycleKeyFile string
	authCacheTTL     time.Duration
	rateLimit        float64
	logFormat        string
	logLevel         string
	shutdownGrace    time.Duration
	readyFile        string
	debugAddr        string
	relayBatch       int
	lease            time.Duration
	relayConcurrency int
	tls              tlsfiles.ServerFlags
	lifecycleTLS     tlsfiles.ClientFiles
	metricsAddr      string
	otlpEndpoint     string

	// Limits on streams (docs in README, "Hostile clients").
	maxStreamsPerAccount int
	maxConcurrentStreams uint
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("certhosting-order", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:50051", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&c.dbPath, "db", "var/order.db", "order database: a SQLite file, or a postgres:// URL")
	fs.IntVar(&c.dbMaxConns, "db-max-conns", db.DefaultMaxConns, "PostgreSQL connections in the pool of -db (each replica holds its own; the identity and CA databases take 4 each)")
	fs.StringVar(&c.identityDB, "identity-db", auth.DefaultIdentityDB, "identity database shared with the lifecycle service (accounts and API keys): a SQLite file both reach, or a postgres:// URL")
	fs.StringVar(&c.lifecycleAddr, "lifecycle-addr", "127.0.0.1:50052", "address of the lifecycle service; several replicas' addresses, comma-separated, share the relay's calls (round_robin)")
	fs.StringVar(&c.lifecycleKeyFile, "lifecycle-key-file", "var/order-service-key", "file holding this service's API key (role service) for the lifecycle service")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", auth.DefaultCacheTTL, "how long a verified API key is cached; a revoked key works at most this long")
	fs.Float64Var(&c.rateLimit, "rate-limit", 2000, "calls per second allowed per account (bursts of twice that); 0 disables the limit")
	fs.IntVar(&c.maxStreamsPerAccount, "max-streams-per-account", auth.DefaultStreamsPerAccount, "streams (WatchEvents) an account may have open at once; the next is refused with ResourceExhausted; 0: no cap")
	fs.UintVar(&c.maxConcurrentStreams, "max-concurrent-streams", grpcserver.DefaultMaxConcurrentStreams, "calls (unary and streaming) open at once on one client connection; a gRPC client queues the calls past it until one ends; 0: no cap")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long unary calls in progress may take to finish on SIGINT/SIGTERM (open streams end at once)")
	fs.StringVar(&c.readyFile, "ready-file", "", "once serving, write the listen address to this file (for scripts that start on port 0)")
	fs.IntVar(&c.relayBatch, "relay-batch", 256, "outbox messages the relay reads per sweep")
	fs.DurationVar(&c.lease, "lease", order.DefaultLease, "how long the relay holds the messages it claimed before another replica may take them over")
	fs.IntVar(&c.relayConcurrency, "relay-concurrency", 0, "CreateBundle calls the relay keeps in flight (0: -relay-batch, the whole sweep)")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve runtime profiles (/debug/pprof/) on this address; empty: off. Bind it to loopback")
	c.tls.Register(fs)
	fs.StringVar(&c.lifecycleTLS.CA, "lifecycle-ca", "", "call the lifecycle service over TLS, verifying its certificate against the CAs in this PEM file; empty: plaintext, allowed to loopback addresses only")
	fs.StringVar(&c.lifecycleTLS.Cert, "lifecycle-tls-cert", "", "mutual TLS towards the lifecycle service: this service's client certificate (PEM), re-read when it changes")
	fs.StringVar(&c.lifecycleTLS.Key, "lifecycle-tls-key", "", "the private key (PEM) of -lifecycle-tls-cert")
	fs.StringVar(&c.lifecycleTLS.ServerName, "lifecycle-server-name", "", "the name expected in the lifecycle service's certificate; empty: the host of each -lifecycle-addr")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at /metrics on this address (docs/metrics.md); empty: off. No authentication: bind it to loopback or a monitoring network")
	fs.StringVar(&c.otlpEndpoint, "otlp-endpoint", "", "export OpenTelemetry traces over OTLP/gRPC (plaintext) to this collector address; empty: tracing off")
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return c, err
	}
	if c.maxStreamsPerAccount < 0 || c.maxConcurrentStreams > math.MaxUint32 {
		return c, fmt.Errorf("-max-streams-per-account and -max-concurrent-streams: want 0 (no cap) or a positive count below 2^32, got %d and %d", c.maxStreamsPerAccount, c.maxConcurrentStreams)
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "admin":
		err = auth.RunAdmin(ctx, "certhosting-order", os.Args[2:], os.Stdout)
	case len(os.Args) > 1 && os.Args[1] == "outbox":
		err = order.RunOutboxCommand(ctx, os.Args[2:], envPrefix, time.Now(), os.Stdout, os.Stderr)
	default:
		err = run(ctx, os.Args[1:], os.Stderr)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "certhosting-order:", err)
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
	clk := clockwork.NewRealClock()
	// Transport security first: a listener or a client refused for plaintext beyond loopback
	// should say so before any database is opened.
	tlsOpts := tlsfiles.Options{Clock: clk, Log: log.With("component", "tls")}
	serverCreds, _, err := cfg.tls.Credentials(cfg.listen, tlsOpts)
	if err != nil {
		return err
	}
	lifecycleCreds, err := lifecycleCredentials(cfg, tlsOpts)
	if err != nil {
		return err
	}
	if cfg.debugAddr != "" {
		if err := cli.ServeDebug(ctx, cfg.debugAddr, log); err != nil {
			return err
		}
	}

	stopTracing, err := tracing.Setup(ctx, cfg.otlpEndpoint, "certhosting-order")
	if err != nil {
		return err
	}
	defer func() {
		// The spans still buffered go out as the process stops, for up to 5 s.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(ctx); err != nil {
			log.Warn("flushing traces", "err", err)
		}
	}()
	metricSet := metrics.New()

	dbOpts := store.DBOptions()
	dbOpts.Logger, dbOpts.MaxConns = log, cfg.dbMaxConns
	database, err := db.Open(ctx, cfg.dbPath, dbOpts)
	if err != nil {
		return err
	}
	defer database.Close()
	st := store.New(database)
	metricSet.Registry.MustRegister(order.NewOutboxCollector(st, clk.Now, log))
	if cfg.metricsAddr != "" {
		if _, err := metrics.Serve(ctx, cfg.metricsAddr, metricSet, log); err != nil {
			return err
		}
	}

	identity, err := auth.OpenStore(ctx, cfg.identityDB, clk, log)
	if err != nil {
		return fmt.Errorf("identity database: %w", err)
	}
	defer identity.Close()
	verifier := auth.NewVerifier(identity, clk, cfg.authCacheTTL)

	serviceKey, err := auth.ReadKeyFile(cfg.lifecycleKeyFile)
	if err != nil {
		return fmt.Errorf("-lifecycle-key-file: %w", err)
	}
	target, balance, err := grpcclient.Replicas(grpcclient.ReplicaList(cfg.lifecycleAddr))
	if err != nil {
		return fmt.Errorf("-lifecycle-addr: %w", err)
	}
	dial := append(balance, grpc.WithTransportCredentials(lifecycleCreds), grpc.WithPerRPCCredentials(auth.BearerCredentials(serviceKey)),
		tracing.DialOption())
	conn, err := grpc.NewClient(target, append(dial, metricSet.DialOptions()...)...)
	if err != nil {
		return fmt.Errorf("-lifecycle-addr: %w", err)
	}
	defer conn.Close()
	relay := order.NewRelay(st, lifecyclev1.NewLifecycleServiceClient(conn), order.RelayConfig{
		Batch: cfg.relayBatch, Concurrency: cfg.relayConcurrency, Lease: cfg.lease, Clock: clk, Log: log.With("component", "relay"),
	})

	srv, err := order.NewServer(ctx, st, clk, log, relay)
	if err != nil {
		return err
	}
	opts := grpcserver.Options{MaxConcurrentStreams: uint32(cfg.maxConcurrentStreams), More: []grpc.ServerOption{tracing.ServerOption()}}
	opts.OuterUnary, opts.OuterStream = metricSet.ServerInterceptors()
	if serverCreds != nil {
		opts.More = append(opts.More, grpc.Creds(serverCreds))
	}
	gs := grpcserver.New(log,
		auth.NewInterceptor(verifier, order.Policy, auth.Limits{Rate: cfg.rateLimit, StreamsPerAccount: cfg.maxStreamsPerAccount}), opts)
	orderv1.RegisterOrderServiceServer(gs.GRPC, srv)

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	log.Info("order service listening", "addr", lis.Addr().String(), "db", db.Redacted(cfg.dbPath), "lifecycle", cfg.lifecycleAddr,
		"tls", cfg.tls.Enabled(), "mutual_tls", cfg.tls.MutualTLS(),
		"lifecycle_tls", cfg.lifecycleTLS.CA != "", "lifecycle_mutual_tls", cfg.lifecycleTLS.Cert != "")
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(lis.Addr().String()), 0o644); err != nil {
			return err
		}
	}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return gs.Run(ctx, lis, cfg.shutdownGrace) })
	g.Go(func() error { return relay.Run(ctx) })
	err = g.Wait()
	log.Info("order service stopped")
	return err
}

// lifecycleCredentials is the transport security of the relay's calls: TLS (mutual with a client
// certificate) from the -lifecycle-* files, or plaintext when -lifecycle-ca is empty, which every
// -lifecycle-addr must then allow (loopback, or -insecure-plaintext).
func lifecycleCredentials(cfg config, o tlsfiles.Options) (credentials.TransportCredentials, error) {
	creds, err := cfg.lifecycleTLS.Credentials(o)
	if err != nil {
		return nil, fmt.Errorf("-lifecycle-ca, -lifecycle-tls-cert, -lifecycle-tls-key, -lifecycle-server-name: %w", err)
	}
	if creds != nil {
		return creds, nil
	}
	for _, addr := range grpcclient.ReplicaList(cfg.lifecycleAddr) {
		if err := tlsfiles.CheckPlaintext("-lifecycle-addr", strings.TrimSpace(addr), cfg.tls.InsecurePlaintext,
			"give -lifecycle-ca (and -lifecycle-tls-cert, -lifecycle-tls-key for mutual TLS)"); err != nil {
			return nil, err
		}
	}
	return insecure.NewCredentials(), nil
}
