package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
	"github.com/certhosting/certhosting/pkg/ca/caconfig"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/pkg/tlsfiles"
	"github.com/certhosting/certhosting/services/lifecycle"
)

// checkPluginTransport refuses a plug-in reached in plaintext (no tls_ca_file) beyond loopback
// unless -insecure-plaintext is set: its token, and the applications' details, would cross the
// network in the clear. The same rule as the services' own listeners (pkg/tlsfiles).
func checkPluginTransport(f *caconfig.File, insecure bool) error {
	for name, a := range f.Authorities {
		if a.Type != caconfig.TypePlugin || a.TLSCAFile != "" {
			continue
		}
		if err := tlsfiles.CheckPlaintext("CA "+name+": address", a.Address, insecure,
			"set tls_ca_file (and tls_cert_file, tls_key_file for mutual TLS) in -ca-config"); err != nil {
			return err
		}
	}
	return nil
}

// authorities builds the configured CAs. local makes the built-in local CA (from the -localca-*
// flags), only if some route uses it. The returned closers release them.
func authorities(ctx context.Context, f *caconfig.File, local func() (ca.Client, io.Closer, error),
	zone *lifecycle.DelegatedZone, keys *secrets.Box, clk clockwork.Clock, log *slog.Logger, dial []grpc.DialOption) (*ca.Registry, []io.Closer, error) {
	clients := map[string]ca.Client{}
	var closers []io.Closer
	fail := func(err error) (*ca.Registry, []io.Closer, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	for name, a := range f.Authorities {
		switch a.Type {
		case caconfig.TypeLocal:
			c, closer, err := local()
			if err != nil {
				return fail(fmt.Errorf("CA %s: %w", name, err))
			}
			clients[name], closers = c, append(closers, closer)
		case caconfig.TypeACME:
			c, err := acmeClient(ctx, name, a, zone, keys, clk, log)
			if err != nil {
				return fail(fmt.Errorf("CA %s: %w", name, err))
			}
			clients[name], closers = c, append(closers, c)
		case caconfig.TypePlugin:
			token, err := os.ReadFile(a.TokenFile)
			if err != nil {
				return fail(fmt.Errorf("CA %s: %w", name, err))
			}
			creds, err := plugin.ClientTLS(a.TLSCAFile, a.TLSCertFile, a.TLSKeyFile, a.TLSServerName)
			if err != nil {
				return fail(fmt.Errorf("CA %s: %w", name, err))
			}
			c, err := plugin.Dial(plugin.ClientConfig{Address: a.Address, Token: strings.TrimSpace(string(token)), TLS: creds,
				Timeout: a.CallTimeout(), DialOptions: dial})
			if err != nil {
				return fail(fmt.Errorf("CA %s: %w", name, err))
			}
			clients[name], closers = c, append(closers, c)
		default:
			return fail(fmt.Errorf("CA %s: type %q is not available in this build", name, a.Type))
		}
		log.Info("CA configured", "name", name, "type", a.Type)
	}
	reg, err := ca.NewRegistry(clients, f.Products)
	if err != nil {
		return fail(err)
	}
	return reg, closers, nil
}

// acmeClient opens an ACME CA's client. It does not contact the CA: the account is registered at
// the first application (an unreachable CA is a transient error then, not a start failure).
func acmeClient(ctx context.Context, name string, a caconfig.Authority, zone *lifecycle.DelegatedZone,
	keys *secrets.Box, clk clockwork.Clock, log *slog.Logger) (*acme.Client, error) {
	if zone == nil {
		return nil, errors.New("ACME needs the delegated DNS zone (-acme-dns-listen, -acme-dns-zone)")
	}
	if err := checkCNAMETimeout(a); err != nil {
		return nil, err
	}
	cfg := acme.Config{
		DirectoryURL: a.DirectoryURL, Email: a.Email, Profile: a.Profile, SendNotAfter: a.SendNotAfter,
		DBPath: a.DB, Box: keys, Challenges: zone, Zone: zone.Zone(), Clock: clk,
		CNAMEResolver: a.CNAMEResolver, CNAMETimeout: a.CNAMEWait(), RelinquishAuthorizations: a.RelinquishAuthorizations,
		Logger: log.With("component", "acme", "ca", name),
	}
	if a.RootCAsFile != "" {
		pem, err := os.ReadFile(a.RootCAsFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pem
	}
	if a.EABKeyID != "" {
		hmac, err := os.ReadFile(a.EABHMACFile)
		if err != nil {
			return nil, err
		}
		cfg.EAB = &acme.EAB{KeyID: a.EABKeyID, HMACKey: strings.TrimSpace(string(hmac))}
	}
	return acme.Open(ctx, cfg)
}

// checkCNAMETimeout checks an ACME CA's CNAME pre-check timeout as localDNSTimeout checks the
// local CA's: its verdict must come before the escalation of the CA's shortest certificate.
func checkCNAMETimeout(a caconfig.Authority) error {
	if a.CNAMEResolver == "" {
		return nil // no pre-check, no wait that ends in a verdict
	}
	wait := a.CNAMEWait()
	if wait == 0 {
		wait = acme.DefaultCNAMETimeout
	}
	lifetime := a.ShortestCertificate()
	if window := lifecycle.EscalationWindow(lifetime); wait >= window {
		return fmt.Errorf("cname_timeout %v is not shorter than the escalation window of a shortest_lifetime %v certificate "+
			"(min(7 days, lifetime/10) = %v): a renewal whose CNAME is missing would be escalated as late before the DNS verdict; "+
			"shorten cname_timeout or set the CA's real shortest_lifetime", wait, lifetime, window)
	}
	return nil
}
