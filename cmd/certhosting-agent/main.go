// Command certhosting-agent is the deploy agent: it installs the certificates of the bundles it
// watches on this host and reports each installation to the lifecycle service.
//
// It follows the account's WatchEvents stream, resuming after the last event it handled (the
// cursor is kept in -state-dir/state.json, with the issuance last deployed for each target).
// At start, and at every event of a watched bundle, it reads the bundle (GetBundle); when the
// bundle's current certificate is not the one deployed, it exports it (ExportCertificate), writes
// fullchain.pem and privkey.pem into the target's directory atomically (a temporary file in the
// same directory, fsync, rename, fsync of the directory; the key with mode 0600), runs
// -reload-command through `sh -c` with -reload-timeout, and reports the outcome
// (RecordDeployment). A failed reload is reported too, and retried at the next event or start.
// When the lifecycle service is unreachable it reconnects with exponential backoff.
//
// The API key needs the deployer role (read, export, report), best limited to the watched bundles:
//
//	certhosting-lifecycle admin create-key -account ACC -role deployer -bundles bdl_...
//
// Every flag can also be set with an environment variable: -lifecycle-addr is
// CERTHOSTING_AGENT_LIFECYCLE_ADDR, and so on. Flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
)

const envPrefix = "CERTHOSTING_AGENT"

// targetFlag is the repeatable -target bundle_id=directory.
type targetFlag map[string]string

func (t targetFlag) String() string {
	var parts []string
	for b, d := range t {
		parts = append(parts, b+"="+d)
	}
	return strings.Join(parts, ",")
}

func (t targetFlag) Set(v string) error {
	bundle, dir, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want bundle_id=directory, got %q", v)
	}
	if err := ids.Check("bundle_id", ids.Bundle, bundle); err != nil {
		return err
	}
	if _, dup := t[bundle]; dup {
		return fmt.Errorf("bundle %s is given twice", bundle)
	}
	abs, err := filepath.Abs(dir)
	if err != nil || dir == "" {
		return fmt.Errorf("bad directory %q", dir)
	}
	t[bundle] = abs
	return nil
}

type config struct {
	lifecycleAddr     string
	lifecycleTLS      tlsfiles.ClientFiles
	insecurePlaintext bool
	apiKeyFile        string
	stateDir          string
	targets           targetFlag
	name              string
	host              string
	reloadCommand     string
	reloadTimeout     time.Duration
	retryBase         time.Duration
	retryMax          time.Duration
	logFormat         string
	logLevel          string
	readyFile         string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	c := config{targets: targetFlag{}}
	fs := flag.NewFlagSet("certhosting-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hostname, _ := os.Hostname()
	fs.StringVar(&c.lifecycleAddr, "lifecycle-addr", "127.0.0.1:50052", "address of the lifecycle service")
	fs.StringVar(&c.lifecycleTLS.CA, "lifecycle-ca", "", "call the lifecycle service over TLS, verifying its certificate against the CAs in this PEM file; empty: plaintext, allowed to loopback addresses only")
	fs.StringVar(&c.lifecycleTLS.Cert, "lifecycle-tls-cert", "", "mutual TLS towards the lifecycle service: the agent's client certificate (PEM)")
	fs.StringVar(&c.lifecycleTLS.Key, "lifecycle-tls-key", "", "the private key (PEM) of -lifecycle-tls-cert")
	fs.StringVar(&c.lifecycleTLS.ServerName, "lifecycle-server-name", "", "the name expected in the lifecycle service's certificate; empty: the host of -lifecycle-addr")
	fs.BoolVar(&c.insecurePlaintext, "insecure-plaintext", false, "allow plaintext to a -lifecycle-addr that is not loopback (never in production: the API key would travel in clear)")
	fs.StringVar(&c.apiKeyFile, "api-key-file", "", "file holding the API key (role deployer suffices; it is never logged)")
	fs.StringVar(&c.stateDir, "state-dir", "var/agent", "directory where the agent keeps its WatchEvents cursor and what it deployed (state.json)")
	fs.Var(c.targets, "target", "bundle_id=directory: install the bundle's certificate as directory/fullchain.pem and directory/privkey.pem; repeatable")
	fs.StringVar(&c.name, "name", hostname, "the deployment target name reported to the lifecycle service (as listed in the bundle's expected_deployment_targets)")
	fs.StringVar(&c.host, "host", hostname, "the host name reported with each deployment")
	fs.StringVar(&c.reloadCommand, "reload-command", "", "command run through sh -c after the files are written, e.g. 'nginx -s reload'; empty: none")
	fs.DurationVar(&c.reloadTimeout, "reload-timeout", 30*time.Second, "how long -reload-command may run before it is killed and the deployment reported as failed")
	fs.DurationVar(&c.retryBase, "retry-base", time.Second, "pause before reconnecting after the lifecycle service is unreachable; it doubles with each failure")
	fs.DurationVar(&c.retryMax, "retry-max", time.Minute, "longest pause between reconnection attempts")
	fs.StringVar(&c.readyFile, "ready-file", "", "once every target is up to date and the agent follows the events, write the lifecycle service's address to this file (for scripts and tests)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return c, err
	}
	switch {
	case len(c.targets) == 0:
		return c, errors.New("-target: at least one bundle_id=directory is required")
	case c.apiKeyFile == "":
		return c, errors.New("-api-key-file is required")
	case c.name == "":
		return c, errors.New("-name is required")
	case c.reloadTimeout <= 0:
		return c, errors.New("-reload-timeout must be positive")
	case c.retryBase <= 0 || c.retryMax < c.retryBase:
		return c, errors.New("-retry-base must be positive and at most -retry-max")
	}
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "certhosting-agent:", err)
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
	key, err := auth.ReadKeyFile(cfg.apiKeyFile)
	if err != nil {
		return fmt.Errorf("-api-key-file: %w", err)
	}
	creds, err := cfg.lifecycleTLS.Credentials(tlsfiles.Options{Log: log.With("component", "tls")})
	if err != nil {
		return fmt.Errorf("-lifecycle-ca, -lifecycle-tls-cert, -lifecycle-tls-key, -lifecycle-server-name: %w", err)
	}
	if creds == nil {
		if err := tlsfiles.CheckPlaintext("-lifecycle-addr", cfg.lifecycleAddr, cfg.insecurePlaintext, "give -lifecycle-ca"); err != nil {
			return err
		}
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(cfg.lifecycleAddr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(auth.BearerCredentials(key)))
	if err != nil {
		return fmt.Errorf("-lifecycle-addr: %w", err)
	}
	defer conn.Close()
	st, err := openState(cfg.stateDir)
	if err != nil {
		return fmt.Errorf("-state-dir: %w", err)
	}
	a := &agent{
		client: lifecyclev1.NewLifecycleServiceClient(conn), log: log, state: st, targets: cfg.targets,
		name: cfg.name, host: cfg.host, reload: cfg.reloadCommand, reloadTimeout: cfg.reloadTimeout,
		backoff: backoff.Policy{Base: cfg.retryBase, Max: cfg.retryMax}, now: time.Now,
	}
	if cfg.readyFile != "" {
		a.ready = func() {
			if err := os.WriteFile(cfg.readyFile, []byte(cfg.lifecycleAddr), 0o644); err != nil {
				log.Error("writing -ready-file", "err", err)
			}
		}
	}
	log.Info("deploy agent started", "lifecycle", cfg.lifecycleAddr, "target", cfg.name, "bundles", len(cfg.targets), "state_dir", cfg.stateDir)
	err = a.run(ctx)
	if ctx.Err() != nil {
		log.Info("deploy agent stopped")
		return nil
	}
	return err
}
