package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// lockedBuffer is a bytes.Buffer safe for the logger's writes and the test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRun starts the binary's run with the zone path from the environment, publishes a record the
// way the zone file's header says, queries it, and stops on context cancellation.
func TestRun(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "var", "dev.zone")
	t.Setenv("CERTHOSTING_DEVDNS_ZONE", zone)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	var logs lockedBuffer
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-log-level", "debug"}, &logs, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run ended before serving: %v\n%s", err, logs.String())
	}

	header, err := os.ReadFile(zone)
	if err != nil {
		t.Fatalf("zone file not created: %v", err)
	}
	if !strings.Contains(string(header), ">> var/dev.zone") {
		t.Errorf("zone header does not show how to publish a record:\n%s", header)
	}
	name := "_certhosting-validation.shop.example.com."
	f, err := os.OpenFile(zone, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(name + ` 60 IN TXT "VALUE"` + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()

	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "VALUE" {
		t.Errorf("answer = %v, want the published TXT record", r.Answer)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after cancel: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "dns query") || !strings.Contains(l, "rcode=NOERROR") {
		t.Errorf("debug log does not show the query:\n%s", l)
	}
}

// TestRunRefusesBrokenZone: a zone file that does not parse stops the server at start.
func TestRunRefusesBrokenZone(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "dev.zone")
	if err := os.WriteFile(zone, []byte("not a record\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), []string{"-listen", "127.0.0.1:0", "-zone", zone}, &lockedBuffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), zone) {
		t.Errorf("run = %v, want an error naming %s", err, zone)
	}
}
