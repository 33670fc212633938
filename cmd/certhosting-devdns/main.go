// Command certhosting-devdns is the development DNS server of `make run`: an authoritative server
// answering from a zone file, which the local CA queries to verify domain control. Publishing a
// validation record is one line appended to the zone file; the next query sees it, no restart.
//
//	echo '_certhosting-validation.shop.example.com. 60 IN TXT "VALUE"' >> var/dev.zone
//	dig @127.0.0.1 -p 5354 TXT _certhosting-validation.shop.example.com
//
// Every flag can also be set with an environment variable: -listen is CERTHOSTING_DEVDNS_LISTEN,
// -zone is CERTHOSTING_DEVDNS_ZONE, and so on. Flags win over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

const envPrefix = "CERTHOSTING_DEVDNS"

type config struct {
	listen    string
	zone      string
	origin    string
	logFormat string
	logLevel  string
	readyFile string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("certhosting-devdns", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:5354", "UDP and TCP listen address (port 0 picks a free port)")
	fs.StringVar(&c.zone, "zone", "var/dev.zone", "zone file to answer from; created with a how-to header if missing, read again whenever it changes")
	fs.StringVar(&c.origin, "origin", ".", "origin of relative names in the zone file until it sets $ORIGIN")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug (logs every query), info, warn or error")
	fs.StringVar(&c.readyFile, "ready-file", "", "once serving, write the listen address to this file (for scripts that start on port 0)")
	err := cli.Parse(fs, args, envPrefix)
	return c, err
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "certhosting-devdns:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. ready, if not nil, is told the bound address once queries are
// answered (tests listen on port 0).
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := cli.Logger(stderr, cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	if err := createZone(cfg.zone); err != nil {
		return err
	}
	src := dnsserver.NewZoneFileSource(cfg.zone, cfg.origin, log)
	// A zone file that does not parse at start is refused at once; a later broken edit is logged
	// and the last good records are kept.
	if err := src.Reload(); err != nil {
		return err
	}
	srv, err := dnsserver.Start(dnsserver.Config{Addr: cfg.listen, Source: src, Logger: log})
	if err != nil {
		return err
	}
	log.Info("dev DNS server listening", "addr", srv.Addr(), "zone", cfg.zone)
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte(srv.Addr()), 0o644); err != nil {
			srv.Close()
			return err
		}
	}
	if ready != nil {
		ready(srv.Addr())
	}
	<-ctx.Done()
	err = srv.Close()
	log.Info("dev DNS server stopped")
	return err
}

// zoneHeader starts a zone file made by createZone: how to publish a record, in one line.
const zoneHeader = `; Zone file of certhosting-devdns, the development DNS server of 'make run'.
; It is read again whenever it changes: no restart needed. A missing file is an empty zone.
;
; Publish the local CA's domain validation record (the name and value are in the application's
; instructions) with one line:
;
;   echo '_certhosting-validation.shop.example.com. 60 IN TXT "VALUE"' >> var/dev.zone
;
; and check it with:
;
;   dig @127.0.0.1 -p 5354 TXT _certhosting-validation.shop.example.com
;
; Withhold it again by deleting the line. Names end with a dot (fully qualified) unless a
; $ORIGIN line comes before them. Any RFC 1035 record works (A, CNAME, TXT, SOA, ...).
$TTL 60
`

// createZone writes a zone file holding only zoneHeader, unless the file exists.
func createZone(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(zoneHeader); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
