package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// The README's grpcurl walkthrough runs as written against a fresh pair, from a directory whose
// var/ is the pair's (the demo key, the dev DNS zone), with only the two addresses swapped for the
// pair's, and shows what it says it shows: a 3-year hosted purchase, the application, the TXT
// record published in the zone, the certificate HOSTED, exported, the events, and (the local CA's
// validity set short, as the README's renewal section says) a renewal; then a deployer key made,
// used, refused a purchase and revoked, and the audit log that shows it.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	r := newReadmeRun(t, func(dnsAddr string) []string {
		return []string{"-localca-resolver", dnsAddr, "-localca-recheck", "1s", "-localca-max-validity", "30s"}
	})
	var script string
	for _, section := range []string{"walkthrough", "renewal", "keys", "support", "reminders", "deploy", "webhooks", "coverage"} {
		if section == "coverage" {
			script += "echo '" + coverageMark + "'\n"
		}
		script += r.block(section)
	}
	// The deploy key the keys section makes, for the secrets check below (not part of the README).
	script += "\nprintf '%s' \"$DEPLOY_KEY\" > var/deploy-key.test\n"
	// The walkthrough waits for delivery, issuance and the renewal with no limit of its own.
	out := r.run(script, 2*time.Minute)
	e, varDir := r.env, r.varDir
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("walkthrough output:\n%s", out)
		}
	})
	out, coverage, ok := strings.Cut(out, coverageMark+"\n")
	if !ok {
		t.Fatalf("output lacks the mark before the coverage section")
	}
	checkCoverageSection(t, coverage)

	for _, want := range []string{"certhosting.order.v1.OrderService", `"status": "SERVING"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not show %q (reflection list, health check)", want)
		}
	}
	// The keys section: the deployer key exported the key and could not buy; the owner revoked it,
	// and the audit log shows both, with the deployer key's name.
	for _, want := range []string{"\n1\n", "Code: PermissionDenied", `"revokeTime"`, `"kind": "AUDIT_EVENT_KIND_API_KEY_REVOKED"`,
		`"kind": "AUDIT_EVENT_KIND_CERTIFICATE_EXPORTED"`, `"actorName": "web deploy"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the keys section's output does not show %q", want)
		}
	}
	// The support section: the customer's case, assigned to the account's engineer (the first of
	// -support-engineers: the pair's account is the first to need one), read back with the
	// certificate and the history behind it.
	for _, want := range []string{`"engineer": "alice"`, `"kind": "SUPPORT_CASE_KIND_CUSTOMER_REQUEST"`, `"assignee": "alice"`,
		`"serialNumber"`, `"type": "EVENT_TYPE_SUPPORT_CASE_OPENED"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the support section's output does not show %q", want)
		}
	}
	// The reminders, deploy and webhooks sections: the account's thresholds changed, the bundle's
	// expected targets named (no agent has reported), an endpoint created and listed.
	for what, re := range map[string]string{
		"reminders": `"expiryReminderDays": \[\s*60,\s*30,\s*7\s*\]`,
		"deploy":    `(?m)^\{"expected":\["web1","web2"\],"deployments":null\}$`,
		"webhooks":  `(?m)^endpoint: whe_\w+\n1$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the %s section's output does not match %s", what, re)
		}
	}
	if !regexp.MustCompile(`(?m)^case: case_\w+$`).MatchString(out) {
		t.Error(`output has no "case: case_..." line`)
	}
	orderID := regexp.MustCompile(`(?m)^order: (ord_\w+)$`).FindStringSubmatch(out)
	if orderID == nil {
		t.Fatal(`output has no "order: ord_..." line`)
	}

	var bundles, histories []*walkthroughDoc
	var instructions, watched int
	for _, d := range jsonDocs(t, out) {
		switch {
		case d.Bundle != nil:
			bundles = append(bundles, d)
		case d.Events != nil:
			histories = append(histories, d)
		case d.Instructions != nil:
			instructions = len(d.Instructions)
		case d.Event != nil:
			watched++
		}
	}
	if len(bundles) != 2 || len(histories) != 2 {
		t.Fatalf("output has %d GetBundle and %d GetCertificateLifecycle answers, want 2 of each", len(bundles), len(histories))
	}
	if got := bundles[0].states(); got != "PENDING_APPLICATION NOT_ACTIVATED NOT_ACTIVATED" {
		t.Errorf("after payment GetBundle shows %s, want 1 PENDING_APPLICATION and 2 NOT_ACTIVATED", got)
	}
	created := histories[0].Events[0]
	if created.ToState != "CERTIFICATE_STATE_PENDING_APPLICATION" || created.Actor != "ACTOR_SYSTEM" || created.Reason != "order "+orderID[1]+" paid" {
		t.Errorf("first history event = %+v; want the creation: to PENDING_APPLICATION by ACTOR_SYSTEM, reason %q",
			created, "order "+orderID[1]+" paid")
	}
	if instructions != 1 {
		t.Errorf("SubmitApplication returned %d DNS records to publish, want 1", instructions)
	}
	hosted := bundles[1]
	if got := hosted.states(); got != "HOSTED NOT_ACTIVATED NOT_ACTIVATED" || hosted.Bundle.HostingStatus != "HOSTING_STATUS_ACTIVE" || hosted.Bundle.FirstIssueTime == "" {
		t.Errorf("after issuance GetBundle shows %s, hosting %s, T0 %q; want instance 1 HOSTED, hosting ACTIVE, T0 set",
			got, hosted.Bundle.HostingStatus, hosted.Bundle.FirstIssueTime)
	}
	if watched == 0 {
		t.Error("WatchEvents printed no event")
	}
	checkExport(t, filepath.Join(varDir, "shop.example.com.json"))
	checkNoSecrets(t, varDir, e.Logs())

	renewed := map[string]int{}
	for _, ev := range histories[1].Events {
		renewed[ev.Type]++
	}
	if renewed["EVENT_TYPE_RENEWAL_STARTED"] < 1 || renewed["EVENT_TYPE_ISSUED"] < 2 {
		t.Errorf("history after the renewal section has %v, want a RENEWAL_STARTED and two ISSUED events", renewed)
	}
}

// The README's maintenance-window and mass re-issue examples run as written after its walkthrough,
// against a pair whose local CA issues certificates of its default validity (a window that never
// opens before a 30-second certificate's escalation is refused, rightly): the window is set, and a
// support engineer's key made with the admin commands re-issues the walkthrough's certificate in
// an operation that runs to its end.
func TestReadmeOperations(t *testing.T) {
	t.Parallel()
	r := newReadmeRun(t, func(dnsAddr string) []string {
		return []string{"-localca-resolver", dnsAddr, "-localca-recheck", "1s"}
	})
	out := r.run(r.block("walkthrough")+r.block("maintenance")+r.block("reissue"), 2*time.Minute)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
	})
	for what, re := range map[string]string{
		"maintenance": `"timeZone": "Europe/Berlin"`,
		"reissue":     `(?m)^operation: operations/op_\w+$`,
		"matched":     `"matched": "1"`,
		"processed":   `"processed": "1"`,
		"started":     `"started": "1"`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the %s output does not match %s", what, re)
		}
	}
}

// readmeRun runs blocks of the README's shell against a fresh pair, from a directory whose var/
// is the pair's (the demo key, the identity database the admin commands open, the dev DNS zone),
// with only the addresses swapped for the pair's.
type readmeRun struct {
	t        *testing.T
	root     string // the module, whose bin/ holds grpcurl
	readme   string
	work     string // the script's working directory
	varDir   string
	crlAddr  string
	env      *env
	adminBin string // a directory with certhosting-order, for the README's admin commands
}

// newReadmeRun starts the pair, the lifecycle service with lifecycleArgs(the dev DNS server's
// address); its CRL listener takes a port of the kernel's choosing (the pair's -crl-listen
// 127.0.0.1:0), read from its log, for the README's 127.0.0.1:50080. It skips (or, under CI, fails) without
// bin/grpcurl, which `make tools` builds.
func newReadmeRun(t *testing.T, lifecycleArgs func(dnsAddr string) []string) *readmeRun {
	t.Helper()
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "grpcurl")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bin/grpcurl is not built, and CI is set: `make test` builds it (make tools) before the tests; the walkthrough must not be skipped in CI")
		}
		t.Skip("bin/grpcurl is not built: run `make tools` (`make test` does) to run the README walkthrough")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the walkthrough uses %s (Debian's %s package), which is not installed", tool, tool)
		}
	}
	// The working directory's var/ is what make run's would be: the pair's files and the zone file
	// the development DNS server answers from.
	r := &readmeRun{t: t, root: root, readme: string(readme), work: t.TempDir()}
	r.varDir = filepath.Join(r.work, "var")
	if err := os.Mkdir(r.varDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dns, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0",
		Source: dnsserver.NewZoneFileSource(filepath.Join(r.varDir, "dev.zone"), "", nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	r.env = startWith(t, pair.Options{Dir: r.varDir, LifecycleArgs: lifecycleArgs(dns.Addr())})
	crl := regexp.MustCompile(`(?m)^lifecycle: .*revocation list served" url=http://([^/\s]+)/`).FindStringSubmatch(r.env.Logs())
	if crl == nil {
		t.Fatal("the lifecycle service logged no address for its revocation list")
	}
	r.crlAddr = crl[1]
	// The README's admin commands run the order binary `make build` puts in bin/; the test's is the
	// one it built.
	r.adminBin = t.TempDir()
	if err := os.Symlink(bins.Order, filepath.Join(r.adminBin, "certhosting-order")); err != nil {
		t.Fatal(err)
	}
	return r
}

// block is the README's ```sh block between <!-- name:begin --> and <!-- name:end -->.
func (r *readmeRun) block(name string) string {
	r.t.Helper()
	b, err := readmeBlock(r.readme, name)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// run runs script with bash -euo pipefail, pointed at the pair, and returns its standard output.
func (r *readmeRun) run(script string, timeout time.Duration) string {
	t := r.t
	t.Helper()
	script = strings.NewReplacer("localhost:50051", r.env.OrderAddr, "localhost:50052", r.env.LifecycleAddr,
		"127.0.0.1:50080", r.crlAddr).Replace(script)
	// Whatever is left pointing at the defaults would talk to a `make run` pair, not this one.
	for _, stale := range []string{"50051", "50052", "50080"} {
		if strings.Contains(script, stale) {
			t.Fatalf("the README's script still mentions %q after pointing it at the test's pair:\n%s", stale, script)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = r.work
	cmd.Env = append(os.Environ(), "PATH="+r.adminBin+string(os.PathListSeparator)+filepath.Join(r.root, "bin")+
		string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("README script: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	return stdout.String()
}

// checkNoSecrets: after the walkthrough (a purchase, an application, an export, an import, a
// revocation, a deploy key made and revoked), no secret is in either service's log (at debug
// level, every call logged) nor in the clear in any database file: not the API keys (the demo key,
// the order service's, the deploy key), not the master key (as written or decoded), not the
// exported private key (as PEM or as DER) nor the imported one.
func checkNoSecrets(t *testing.T, varDir, logs string) {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(varDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return bytes.TrimSpace(b)
	}
	secrets := map[string][]byte{
		"demo API key": read("demo-api-key"), "order service's API key": read("order-service-key"), "deploy API key": read("deploy-key.test"),
		"master key": read("lifecycle-master.key"),
	}
	if raw, err := base64.StdEncoding.DecodeString(string(secrets["master key"])); err == nil {
		secrets["master key, decoded"] = raw
	}
	var exp struct {
		PrivateKeyPem string `json:"privateKeyPem"`
	}
	if err := json.Unmarshal(read("shop.example.com.json"), &exp); err != nil {
		t.Fatal(err)
	}
	for name, pemText := range map[string][]byte{"exported private key": []byte(exp.PrivateKeyPem), "imported private key": read("www.key")} {
		block, _ := pem.Decode(pemText)
		if block == nil {
			t.Fatalf("%s is not PEM", name)
		}
		secrets[name+" (DER)"] = block.Bytes
		body := strings.Split(strings.TrimSpace(string(pemText)), "\n")
		secrets[name+" (a line of its PEM)"] = []byte(body[1])
	}
	if len(secrets["deploy API key"]) == 0 {
		t.Fatal("the keys section made no deploy key")
	}
	files, _ := filepath.Glob(filepath.Join(varDir, "*.db*")) // the databases and their -wal and -shm
	if len(files) < 4 {
		t.Fatalf("found %d database files in %s, want the four databases at least", len(files), varDir)
	}
	places := map[string][]byte{"the services' logs": []byte(logs)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		places[filepath.Base(f)] = b
	}
	for where, content := range places {
		for name, secret := range secrets {
			if bytes.Contains(content, secret) {
				t.Errorf("%s holds the %s in the clear", where, name)
			}
		}
		if bytes.Contains(content, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a PEM private key", where)
		}
	}
}

// checkExport reads the walkthrough's ExportCertificate answer: a chain naming shop.example.com
// and the private key of its leaf.
func checkExport(t *testing.T, path string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the walkthrough's export: %v", err)
	}
	var exp struct {
		Issuance struct {
			CertificateChainPem string `json:"certificateChainPem"`
		} `json:"issuance"`
		PrivateKeyPem string `json:"privateKeyPem"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	block, _ := pem.Decode([]byte(exp.Issuance.CertificateChainPem))
	keyBlock, _ := pem.Decode([]byte(exp.PrivateKeyPem))
	if block == nil || keyBlock == nil {
		t.Fatalf("export lacks the chain or the key:\n%s", raw)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(leaf.PublicKey)
	keyPub, _ := x509.MarshalPKIXPublicKey(key.(crypto.Signer).Public())
	if !bytes.Equal(pub, keyPub) || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "shop.example.com" {
		t.Errorf("exported key matches the leaf: %v; leaf names %v, want shop.example.com", bytes.Equal(pub, keyPub), leaf.DNSNames)
	}
}

// readmeBlock returns the ```sh block between the README's <!-- name:begin --> and
// <!-- name:end --> markers.
func readmeBlock(readme, name string) (string, error) {
	_, rest, ok := strings.Cut(readme, "<!-- "+name+":begin -->")
	section, _, ok2 := strings.Cut(rest, "<!-- "+name+":end -->")
	if !ok || !ok2 {
		return "", fmt.Errorf("README.md has no <!-- %s:begin --> ... <!-- %s:end --> section", name, name)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	script, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		return "", fmt.Errorf("the README's %s section has no ```sh block", name)
	}
	return script, nil
}

// walkthroughDoc is the part of a grpcurl answer the test reads: GetBundle's,
// GetCertificateLifecycle's, SubmitApplication's or one WatchEvents message.
type walkthroughDoc struct {
	Bundle *struct {
		HostingStatus  string `json:"hostingStatus"`
		FirstIssueTime string `json:"firstIssueTime"`
		Certificates   []struct {
			State string `json:"state"`
		} `json:"certificates"`
	} `json:"bundle"`
	Events []struct {
		Type    string `json:"type"`
		ToState string `json:"toState"`
		Actor   string `json:"actor"`
		Reason  string `json:"reason"`
	} `json:"events"`
	Instructions []json.RawMessage `json:"instructions"`
	Event        *struct {
		Type string `json:"type"`
	} `json:"event"`
	Certificate *struct {
		State              string          `json:"state"`
		CurrentApplication *walkthroughApp `json:"currentApplication"`
	} `json:"certificate"`
}

// walkthroughApp is the part of an application the test reads.
type walkthroughApp struct {
	Status string `json:"status"`
}

// Imported reports whether an application is an imported certificate's: issued with no CA asked.
// grpcurl shows it as issued, with no CA verdict to wait for.
func (a *walkthroughApp) Imported() bool { return a != nil && a.Status == "APPLICATION_STATUS_ISSUED" }

// states lists a GetBundle answer's instance states, without their prefix.
func (d *walkthroughDoc) states() string {
	var s []string
	for _, c := range d.Bundle.Certificates {
		s = append(s, strings.TrimPrefix(c.State, "CERTIFICATE_STATE_"))
	}
	return strings.Join(s, " ")
}

// jsonDocs picks grpcurl's answers out of the output: each is a JSON object whose braces stand
// alone at the start of a line; other lines (grpcurl list, echo) are skipped.
func jsonDocs(t *testing.T, out string) []*walkthroughDoc {
	t.Helper()
	var docs []*walkthroughDoc
	var cur []string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "{":
			cur = []string{line}
		case cur != nil:
			cur = append(cur, line)
			if line == "}" {
				d := new(walkthroughDoc)
				if err := json.Unmarshal([]byte(strings.Join(cur, "\n")), d); err != nil {
					t.Fatalf("a grpcurl answer is not JSON: %v\n%s", err, strings.Join(cur, "\n"))
				}
				docs, cur = append(docs, d), nil
			}
		}
	}
	return docs
}

// coverageMark separates the output of the README's coverage section from the rest.
const coverageMark = "### the coverage section"

// checkCoverageSection reads the output of the README's "Hosting later, an imported certificate,
// revocation" section: the import made the instance ISSUED with a record to publish, hosting
// enabled made it HOSTED, the revoked certificate was on the CRL with its reason, and a new
// certificate replaced it.
func checkCoverageSection(t *testing.T, out string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the coverage section's output:\n%s", out)
		}
	})
	var imported, enabled bool
	for _, d := range jsonDocs(t, out) {
		switch {
		case d.Certificate != nil && d.Certificate.CurrentApplication.Imported() && len(d.Instructions) == 1:
			imported = d.Certificate.State == "CERTIFICATE_STATE_ISSUED"
		case d.Bundle != nil:
			enabled = d.Bundle.HostingStatus == "HOSTING_STATUS_ACTIVE" && d.states() == "HOSTED NOT_ACTIVATED"
		}
	}
	if !imported {
		t.Error("ImportCertificate did not answer with an ISSUED instance and one record to publish")
	}
	if !enabled {
		t.Error("EnableHosting did not answer with the imported certificate HOSTED and hosting ACTIVE")
	}
	for _, want := range []string{`"state": "CERTIFICATE_STATE_REVOKED"`, `"revocationReason": "REVOCATION_REASON_KEY_COMPROMISE"`,
		"Key Compromise"} {
		if !strings.Contains(out, want) {
			t.Errorf("the revocation's output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^replaced: (\w+) by (\w+)$`).FindStringSubmatch(out)
	if m == nil || m[1] == m[2] {
		t.Errorf("the revoked certificate was not replaced by a new one: %q", m)
	}
}
