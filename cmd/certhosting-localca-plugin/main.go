// Command certhosting-localca-plugin runs the built-in local CA as a CA plug-in: a separate
// process serving certhosting.ca.v1.CertificateAuthorityService, which the lifecycle service calls
// through its plug-in client (see docs/ca-plugins.md). It is both a useful deployment (the CA and
// its keys in their own process) and the reference for writing a plug-in in another language.
//
// Callers authenticate with the token in -token-file, sent as `authorization: Bearer <token>`.
// Without TLS flags the plug-in speaks plaintext, for loopback; -tls-cert-file and -tls-key-file
// make it serve TLS, and -tls-client-ca-file adds mutual TLS: callers must also present a
// certificate signed by that CA (the lifecycle's tls_cert_file in its -ca-config). -root-file
// writes the CA's root certificate at start, for whoever needs to trust what it issues.
//
// Every flag can also be set with an environment variable: -listen is
// CERTHOSTING_LOCALCA_PLUGIN_LISTEN, and so on. Flags win over the environment.
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
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	cav1 "github.com/certhosting/certhosting/gen/go/certhosting/ca/v1"
	"github.com/certhosting/certhosting/pkg/ca/localca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
)

const envPrefix = "CERTHOSTING_LOCALCA_PLUGIN"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "certhosting-localca-plugin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("certhosting-localca-plugin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:50060", "gRPC listen address (port 0 picks a free port)")
	tokenFile := fs.String("token-file", "var/localca-plugin-token", "file holding the token callers must send as `authorization: Bearer <token>`")
	dbPath := fs.String("db", "var/localca-plugin.db", "the CA's database (its root, intermediate and applications)")
	keyFile := fs.String("master-key-file", "var/localca-plugin-master.key", "file holding the base64 master key sealing the CA's keys (or set "+envPrefix+"_MASTER_KEY)")
	resolver := fs.String("resolver", "127.0.0.1:5354", "DNS server the CA looks validation records up at")
	maxValidity := fs.Duration("max-validity", localca.DefaultMaxValidity, "longest certificate the CA issues")
	dnsTimeout := fs.Duration("dns-timeout", localca.DefaultDNSTimeout, "how long the DNS must answer that an application's record is absent before it is rejected (failed lookups do not count); default 1h, or half the escalation window of a -max-validity certificate when that is shorter; must be shorter than that window")
	recheck := fs.Duration("recheck", localca.DefaultRecheck, "how often a missing DNS record is looked for again")
	caaIdentity := fs.String("caa-identity", localca.DefaultCAAIdentity, "the CA's name in CAA records: it issues for a domain only if the domain's CAA records are absent or name it; empty skips the check")
	rejectOrg := fs.String("reject-org", "", "regular expression: OV/EV organization legal names to reject")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	readyFile := fs.String("ready-file", "", "once serving, write the listen address to this file")
	rootFile := fs.String("root-file", "", "at start, write the CA's root certificate (PEM) to this file")
	tlsCert := fs.String("tls-cert-file", "", "serve TLS with this certificate (PEM); empty: plaintext, for loopback only")
	tlsKey := fs.String("tls-key-file", "", "the private key (PEM) of -tls-cert-file")
	tlsClientCA := fs.String("tls-client-ca-file", "", "mutual TLS: callers must present a certificate signed by a CA in this PEM file")
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return err
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return errors.New("-tls-cert-file and -tls-key-file go together")
	}
	// The lifecycle service's rule for its own local CA (docs/lifecycle.md): the DNS verdict must
	// come before the escalation of a renewal the verdict rejects.
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "dns-timeout" })
	timeout, window, ok := lifecycle.VerdictTimeout(*dnsTimeout, explicit, *maxValidity)
	if !ok {
		return fmt.Errorf("-dns-timeout %v: must be positive and shorter than the escalation window of a -max-validity %v certificate "+
			"(min(7 days, lifetime/10) = %v): shorten -dns-timeout or lengthen -max-validity", *dnsTimeout, *maxValidity, window)
	}
	*dnsTimeout = timeout
	if *tlsClientCA != "" && *tlsCert == "" {
		return errors.New("-tls-client-ca-file needs -tls-cert-file and -tls-key-file: mutual TLS is TLS first")
	}
	log, err := cli.Logger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		return fmt.Errorf("-token-file: %w", err)
	}
	// Trimmed as the lifecycle service trims its copy, so an editor's newline does not matter.
	tok := strings.TrimSpace(string(token))
	if len(tok) < 16 {
		return fmt.Errorf("-token-file: the token must be at least 16 bytes")
	}
	unary, stream := plugin.TokenAuth(tok)
	opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream), grpc.MaxRecvMsgSize(1 << 20)}
	if *tlsCert != "" {
		creds, err := plugin.ServerTLS(*tlsCert, *tlsKey, *tlsClientCA)
		if err != nil {
			return fmt.Errorf("-tls-cert-file: %w", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	box, err := secrets.Load(envPrefix+"_MASTER_KEY", *keyFile)
	if err != nil {
		return err
	}
	var rule localca.OrganizationRule
	if *rejectOrg != "" {
		if rule.RejectLegalName, err = regexp.Compile(*rejectOrg); err != nil {
			return fmt.Errorf("-reject-org: %w", err)
		}
	}
	authority, err := localca.Open(ctx, localca.Config{DBPath: *dbPath, Box: box, Clock: clockwork.NewRealClock(),
		Resolver: *resolver, MaxValidity: *maxValidity, DNSTimeout: *dnsTimeout, Recheck: *recheck,
		OrganizationRule: rule, CAAIdentity: *caaIdentity, Logger: log})
	if err != nil {
		return err
	}
	defer authority.Close()
	if *rootFile != "" {
		if err := os.WriteFile(*rootFile, authority.RootPEM(), 0o644); err != nil {
			return fmt.Errorf("-root-file: %w", err)
		}
	}

	srv := grpc.NewServer(opts...)
	cav1.RegisterCertificateAuthorityServiceServer(srv, plugin.NewServer(authority))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)

	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	log.Info("local CA plug-in listening", "addr", lis.Addr().String(), "db", *dbPath,
		"tls", *tlsCert != "", "mutual_tls", *tlsClientCA != "")
	if *tlsCert == "" && !isLoopback(lis.Addr()) {
		log.Warn("serving plaintext beyond loopback: the token travels in the clear; set -tls-cert-file and -tls-key-file")
	}
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(lis.Addr().String()), 0o644); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		srv.Stop()
	}
	log.Info("local CA plug-in stopped")
	return nil
}

// isLoopback reports whether addr is a loopback address (not a wildcard one: 0.0.0.0 listens
// beyond).
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
