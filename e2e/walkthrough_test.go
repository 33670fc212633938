package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/pair"
)

// The README's grpcurl walkthrough runs as written against a fresh pair (its addresses and key
// file swapped for the pair's) and shows what it says it shows.
func TestReadmeWalkthrough(t *testing.T) {
	t.Parallel()
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "grpcurl")); err != nil {
		t.Skip("bin/grpcurl is not built: run `make tools` (`make test` does) to run the README walkthrough")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := walkthrough(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t)
	script = strings.NewReplacer(
		"localhost:50051", e.OrderAddr,
		"localhost:50052", e.LifecycleAddr,
		"var/demo-api-key", e.DemoKeyFile,
	).Replace(script)
	// Whatever is left pointing at the defaults would talk to a `make run` pair, not this one.
	for _, stale := range []string{"50051", "50052", "var/"} {
		if strings.Contains(script, stale) {
			t.Fatalf("the walkthrough still mentions %q after pointing it at the test's pair:\n%s", stale, script)
		}
	}

	// The walkthrough polls for delivery with no limit of its own.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("walkthrough: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("walkthrough output:\n%s", out)
		}
	})

	for _, want := range []string{"certhosting.order.v1.OrderService", `"status": "SERVING"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not show %q (reflection list, health check)", want)
		}
	}
	orderID := regexp.MustCompile(`(?m)^order: (ord_\w+)$`).FindStringSubmatch(out)
	if orderID == nil {
		t.Fatal(`output has no "order: ord_..." line`)
	}

	var bundle, history *walkthroughDoc
	for _, d := range jsonDocs(t, out) {
		switch {
		case d.Bundle != nil:
			bundle = d
		case d.Events != nil:
			history = d
		}
	}
	if bundle == nil {
		t.Fatal("output has no GetBundle answer")
	}
	states := map[string]int{}
	for _, c := range bundle.Bundle.Certificates {
		states[c.State]++
	}
	if len(bundle.Bundle.Certificates) != 3 || states["CERTIFICATE_STATE_PENDING_APPLICATION"] != 1 || states["CERTIFICATE_STATE_NOT_ACTIVATED"] != 2 {
		t.Errorf("GetBundle shows instance states %v, want 1 PENDING_APPLICATION and 2 NOT_ACTIVATED", states)
	}
	if history == nil || len(history.Events) == 0 {
		t.Fatal("output has no GetCertificateLifecycle answer with events")
	}
	created := history.Events[0]
	if created.ToState != "CERTIFICATE_STATE_PENDING_APPLICATION" || created.Actor != "ACTOR_SYSTEM" || created.Reason != "order "+orderID[1]+" paid" {
		t.Errorf("first history event = %+v; want the creation: to PENDING_APPLICATION by ACTOR_SYSTEM, reason %q",
			created, "order "+orderID[1]+" paid")
	}
}

// walkthrough returns the ```sh block between the README's walkthrough markers.
func walkthrough(readme string) (string, error) {
	_, rest, ok := strings.Cut(readme, "<!-- walkthrough:begin -->")
	section, _, ok2 := strings.Cut(rest, "<!-- walkthrough:end -->")
	if !ok || !ok2 {
		return "", errors.New("README.md has no <!-- walkthrough:begin --> ... <!-- walkthrough:end --> section")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	script, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		return "", errors.New("the README walkthrough section has no ```sh block")
	}
	return script, nil
}

// walkthroughDoc is the part of a grpcurl answer the test reads: GetBundle's or
// GetCertificateLifecycle's.
type walkthroughDoc struct {
	Bundle *struct {
		Certificates []struct {
			State string `json:"state"`
		} `json:"certificates"`
	} `json:"bundle"`
	Events []struct {
		ToState string `json:"toState"`
		Actor   string `json:"actor"`
		Reason  string `json:"reason"`
	} `json:"events"`
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
