// Command certhosting-lifecycle runs the lifecycle service
// (certhosting.lifecycle.v1.LifecycleService). `certhosting-lifecycle admin ...` manages accounts
// and keys (the same commands as certhosting-order's, on the shared identity database).
//
// Every flag can also be set with an environment variable: -listen is
// CERTHOSTING_LIFECYCLE_LISTEN, -db is CERTHOSTING_LIFECYCLE_DB, and so on. Flags win over the
// environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/grpcserver"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

const envPrefix = "CERTHOSTING_LIFECYCLE"

type config struct {
	listen        string
	dbPath        string
	identityDB    string
	authCacheTTL  time.Duration
	rateLimit     float64
	logFormat     string
	logLevel      string
	shutdownGrace time.Duration
	readyFile     string
	debugAddr     string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("certhosting-lifecycle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:50052", "gRPC listen address (port 0 picks a free port)")
	fs.StringVar(&c.dbPath, "db", "var/lifecycle.db", "lifecycle database (SQLite file)")
	fs.StringVar(&c.identityDB, "identity-db", auth.DefaultIdentityDB, "identity database shared with the order service (accounts and API keys)")
	fs.DurationVar(&c.authCacheTTL, "auth-cache-ttl", auth.DefaultCacheTTL, "how long a verified API key is cached; a revoked key works at most this long")
	fs.Float64Var(&c.rateLimit, "rate-limit", 2000, "calls per second allowed per account (bursts of twice that); 0 disables the limit")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.shutdownGrace, "shutdown-grace", 10*time.Second, "how long calls in progress may take to finish on SIGINT/SIGTERM")
	fs.StringVar(&c.readyFile, "ready-file", "", "once serving, write the listen address to this file (for scripts that start on port 0)")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve runtime profiles (/debug/pprof/) on this address; empty: off. Bind it to loopback")
	err := cli.Parse(fs, args, envPrefix)
	return c, err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		err = auth.RunAdmin(ctx, "certhosting-lifecycle", os.Args[2:], os.Stdout)
	} else {
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
	clk := clockwork.NewRealClock()
	if cfg.debugAddr != "" {
		if err := cli.ServeDebug(ctx, cfg.debugAddr, log); err != nil {
			return err
		}
	}

	database, err := db.Open(ctx, cfg.dbPath, db.Options{Migrations: store.Migrations(), Logger: log})
	if err != nil {
		return err
	}
	defer database.Close()

	identity, err := auth.OpenStore(ctx, cfg.identityDB, clk, log)
	if err != nil {
		return fmt.Errorf("identity database: %w", err)
	}
	defer identity.Close()
	verifier := auth.NewVerifier(identity, clk, cfg.authCacheTTL)

	srv := lifecycle.NewServer(store.New(database), clk, log)
	gs := grpcserver.New(log, auth.NewInterceptor(verifier, lifecycle.Policy, cfg.rateLimit))
	lifecyclev1.RegisterLifecycleServiceServer(gs.GRPC, srv)

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	log.Info("lifecycle service listening", "addr", lis.Addr().String(), "db", cfg.dbPath)
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(lis.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	err = gs.Run(ctx, lis, cfg.shutdownGrace)
	log.Info("lifecycle service stopped")
	return err
}
