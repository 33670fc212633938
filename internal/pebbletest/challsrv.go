package pebbletest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/internal/pair"
)

// ChallSrv is a running pebble-challtestsrv serving DNS only: the customer's zone, whose records
// a test sets through its management API.
type ChallSrv struct {
	// DNSAddr is where it answers DNS (UDP and TCP).
	DNSAddr string
	// ManagementURL is its management API.
	ManagementURL string

	http *http.Client
}

func startChallSrv(t testing.TB, bin string) *ChallSrv {
	t.Helper()
	dnsAddr, err := freeDNSAddr()
	if err != nil {
		t.Fatal(err)
	}
	mgmt, err := pair.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := &ChallSrv{DNSAddr: dnsAddr, ManagementURL: "http://" + mgmt, http: &http.Client{Timeout: 10 * time.Second}}
	t.Cleanup(s.http.CloseIdleConnections)
	proc, err := startProcess(t, "pebble-challtestsrv", bin, []string{
		"-dnsserver", dnsAddr, "-management", mgmt,
		"-http01", "", "-https01", "", "-doh", "", "-tlsalpn01", "", "-defaultIPv6", "",
	}, os.Environ(), filepath.Dir(bin))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err = proc.waitReady(ctx, func(ctx context.Context) error {
		if err := s.post(ctx, "/set-default-ipv4", map[string]string{"ip": "127.0.0.1"}); err != nil {
			return err
		}
		m := new(dns.Msg)
		m.SetQuestion("ready.test.", dns.TypeA)
		_, _, err := (&dns.Client{Net: "tcp", Timeout: time.Second}).ExchangeContext(ctx, m, dnsAddr)
		return err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, proc.output())
	}
	return s
}

// freeDNSAddr picks a loopback port free for both TCP and UDP.
func freeDNSAddr() (string, error) {
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr, nil
		}
	}
	return "", fmt.Errorf("no loopback port free for both TCP and UDP")
}

// SetCNAME makes host an alias of target (one CNAME per host).
func (s *ChallSrv) SetCNAME(ctx context.Context, host, target string) error {
	return s.post(ctx, "/set-cname", map[string]string{"host": dns.Fqdn(host), "target": dns.Fqdn(target)})
}

// ClearCNAME removes host's CNAME.
func (s *ChallSrv) ClearCNAME(ctx context.Context, host string) error {
	return s.post(ctx, "/clear-cname", map[string]string{"host": dns.Fqdn(host)})
}

// SetTXT adds a TXT value at host.
func (s *ChallSrv) SetTXT(ctx context.Context, host, value string) error {
	return s.post(ctx, "/set-txt", map[string]string{"host": dns.Fqdn(host), "value": value})
}

// ClearTXT removes every TXT value at host.
func (s *ChallSrv) ClearTXT(ctx context.Context, host string) error {
	return s.post(ctx, "/clear-txt", map[string]string{"host": dns.Fqdn(host)})
}

func (s *ChallSrv) post(ctx context.Context, path string, body any) error {
	_, err := postJSON(ctx, s.http, s.ManagementURL+path, body)
	return err
}
