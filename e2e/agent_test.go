package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// TestDeployAgent runs the deploy agent as a process against a real pair: a hosted bundle gets
// its certificate issued by the local CA (validated through a DNS server of the test's own), a
// deployer key limited to that bundle is made with the admin command, and the agent installs the
// certificate (files whole and matching the export, the key 0600), runs its reload command and
// reports the deployment, which GetBundle shows. RenewCertificate makes a successor, which the
// agent installs again. Killed and restarted, the agent deploys nothing twice; a renewal made while
// it was down is deployed when it comes back.
func TestDeployAgent(t *testing.T) {
	t.Parallel()
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })
	dir := t.TempDir()
	e := startWith(t, pair.Options{Dir: dir, LifecycleArgs: []string{
		"-localca-resolver", dnsSrv.Addr(), "-localca-recheck", "1s", "-ticker-interval", "1s",
	}})
	hosted := hostBundles(t, e, "agent", 1, 0, func(_ string, r *lifecyclev1.DnsRecord) {
		name := dns.Fqdn(r.GetName())
		zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{r.GetValue()}})
	})[0]
	bundle := func() *lifecyclev1.Bundle {
		t.Helper()
		resp, err := e.lifecycle.GetBundle(t.Context(), &lifecyclev1.GetBundleRequest{BundleId: hosted.id})
		if err != nil {
			t.Fatalf("GetBundle: %v", err)
		}
		return resp.GetBundle()
	}

	// The least rights: a deployer key limited to the bundle.
	keyFile := filepath.Join(dir, "agent.key")
	if _, err := e.Admin(t.Context(), "create-key", "-account", bundle().GetAccountId(), "-role", "deployer",
		"-bundles", hosted.id, "-name", "deploy agent", "-out", keyFile); err != nil {
		t.Fatal(err)
	}
	certDir, stateDir, reloads := filepath.Join(dir, "nginx", "shop"), filepath.Join(dir, "agent-state"), filepath.Join(dir, "reloads")
	startAgent := func() {
		t.Helper()
		if _, err := e.StartProcess(t.Context(), "agent", bins.Agent, "-lifecycle-addr", e.LifecycleAddr, "-api-key-file", keyFile,
			"-state-dir", stateDir, "-target", hosted.id+"="+certDir, "-name", "web1", "-host", "web1.example.net",
			"-reload-command", "echo reloaded >> "+reloads, "-reload-timeout", "10s", "-retry-base", "100ms", "-retry-max", "1s"); err != nil {
			t.Fatal(err)
		}
	}
	reloadCount := func() int {
		b, err := os.ReadFile(reloads)
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), "reloaded\n")
	}
	// deployed waits until the files hold issuance's certificate, the reload ran `want` times in
	// all, and GetBundle shows the deployment.
	deployed := func(issuance *lifecyclev1.Issuance, want int) {
		t.Helper()
		waitFor(t, 30*time.Second, func() error {
			if err := checkInstalled(certDir, issuance); err != nil {
				return err
			}
			if n := reloadCount(); n != want {
				return fmt.Errorf("reload ran %d times, want %d", n, want)
			}
			ds := bundle().GetDeployments()
			if len(ds) != 1 || ds[0].GetTarget() != "web1" || ds[0].GetIssuanceId() != issuance.GetIssuanceId() || !ds[0].GetSuccess() ||
				ds[0].GetSerialNumber() != issuance.GetSerialNumber() || ds[0].GetHost() != "web1.example.net" ||
				ds[0].GetCertificatePath() != filepath.Join(certDir, "fullchain.pem") {
				return fmt.Errorf("GetBundle shows deployments %v, want web1 with %s", ds, issuance.GetIssuanceId())
			}
			return nil
		})
	}
	renew := func(previous string) *lifecyclev1.Issuance {
		t.Helper()
		if _, err := e.lifecycle.RenewCertificate(t.Context(), &lifecyclev1.RenewCertificateRequest{CertificateId: hosted.cert}); err != nil {
			t.Fatalf("RenewCertificate: %v", err)
		}
		var cur *lifecyclev1.Issuance
		waitFor(t, 30*time.Second, func() error {
			cur = bundle().GetCurrentIssuance()
			if cur.GetIssuanceId() == previous {
				return fmt.Errorf("the renewal is not issued yet")
			}
			return nil
		})
		return cur
	}

	startAgent()
	first := bundle().GetCurrentIssuance()
	if first.GetIssuanceId() != hosted.first {
		t.Fatalf("current issuance %s, want the first %s", first.GetIssuanceId(), hosted.first)
	}
	deployed(first, 1)
	if fi, err := os.Stat(filepath.Join(certDir, "privkey.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("privkey.pem: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	second := renew(first.GetIssuanceId())
	deployed(second, 2)
	cursor := agentCursor(t, stateDir)
	if cursor == "" {
		t.Fatal("the agent kept no cursor after following the renewal's events")
	}

	// Killed and restarted: it resumes after its cursor and installs nothing again. (Killed after
	// it recorded the deployment but before it saved that in its state, it would install the same
	// certificate once more: at least once, by design; so the kill waits for the save.)
	waitFor(t, 10*time.Second, func() error {
		if got := agentDeployed(t, stateDir, hosted.id); got != second.GetIssuanceId() {
			return fmt.Errorf("the agent's state has %q deployed, want %s", got, second.GetIssuanceId())
		}
		return nil
	})
	e.KillProcess("agent")
	startAgent()
	time.Sleep(time.Second) // room for a wrong redeploy to show
	deployed(second, 2)

	// A renewal while the agent is down is installed when it is back.
	e.KillProcess("agent")
	third := renew(second.GetIssuanceId())
	startAgent()
	deployed(third, 3)
	waitFor(t, 10*time.Second, func() error {
		if c := agentCursor(t, stateDir); c == cursor {
			return fmt.Errorf("cursor %q did not move past %q", c, cursor)
		}
		return nil
	})
	if err := e.StopProcess("agent"); err != nil {
		t.Errorf("stopping the agent: %v", err)
	}
	if strings.Contains(e.Logs(), strings.TrimSpace(readFile(t, keyFile))) {
		t.Error("the agent's API key appears in the logs")
	}
}

// checkInstalled says why dir does not hold issuance's certificate and its key as the agent
// writes them: fullchain.pem equal to the chain, its leaf with the issuance's serial, privkey.pem
// the leaf's key.
func checkInstalled(dir string, issuance *lifecyclev1.Issuance) error {
	chain, err := os.ReadFile(filepath.Join(dir, "fullchain.pem"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(filepath.Join(dir, "privkey.pem"))
	if err != nil {
		return err
	}
	if string(chain) != issuance.GetCertificateChainPem() {
		return fmt.Errorf("fullchain.pem is not issuance %s's chain", issuance.GetIssuanceId())
	}
	block, _ := pem.Decode(chain)
	if block == nil {
		return fmt.Errorf("fullchain.pem holds no PEM")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return err
	}
	if got := fmt.Sprintf("%x", leaf.SerialNumber); !strings.EqualFold(got, strings.TrimLeft(issuance.GetSerialNumber(), "0")) &&
		!strings.EqualFold(got, issuance.GetSerialNumber()) {
		return fmt.Errorf("fullchain.pem's serial %s, want %s", got, issuance.GetSerialNumber())
	}
	if _, err := tls.X509KeyPair(chain, key); err != nil {
		return fmt.Errorf("privkey.pem does not match fullchain.pem: %w", err)
	}
	return nil
}

func agentCursor(t *testing.T, stateDir string) string {
	t.Helper()
	var st struct {
		Cursor string `json:"cursor"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(stateDir, "state.json"))), &st); err != nil {
		t.Fatal(err)
	}
	return st.Cursor
}

// agentDeployed is the issuance the agent's state says it deployed for the bundle.
func agentDeployed(t *testing.T, stateDir, bundleID string) string {
	t.Helper()
	var st struct {
		Deployed map[string]string `json:"deployed"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(stateDir, "state.json"))), &st); err != nil {
		t.Fatal(err)
	}
	return st.Deployed[bundleID]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
