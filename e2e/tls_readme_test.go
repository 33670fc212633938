package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/pair"
)

// The README's "TLS and mutual TLS" block, as written: its commands before the services run
// first (tls-init), the two services start with exactly the flags its service lines give (and the
// pair's own ports, databases and keys), and the commands after run against them with only the
// two addresses swapped for the pair's: grpcurl -cacert gets the catalog and, with the tools'
// client certificate, the lifecycle service's health, and the service key with that certificate
// is PermissionDenied on CreateBundle.
func TestReadmeTLS(t *testing.T) {
	t.Parallel()
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	grpcurl := grpcurlPath(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := readmeBlock(string(readme), "tls")
	if err != nil {
		t.Fatal(err)
	}
	before, after, services := splitServiceLines(block)
	lifecycleArgs, orderArgs := services["bin/certhosting-lifecycle"], services["bin/certhosting-order"]
	if lifecycleArgs == nil || orderArgs == nil || strings.TrimSpace(before) == "" || strings.TrimSpace(after) == "" {
		t.Fatalf("the README's tls block wants commands, a line starting each service (ending in &), commands; got before %q, services %q, after %q",
			before, services, after)
	}

	// A working directory like the repository's: bin/ with the binaries, var/ the pair's.
	work := t.TempDir()
	varDir := filepath.Join(work, "var")
	binDir := filepath.Join(work, "bin")
	for _, d := range []string{varDir, binDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"certhosting-lifecycle": bins.Lifecycle, "certhosting-order": bins.Order, "grpcurl": grpcurl} {
		if err := os.Symlink(target, filepath.Join(binDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	// The services run in var/ (the pair's directory): paths the README gives from the
	// repository's root are made absolute.
	absolute := func(args []string) []string {
		out := make([]string, len(args))
		for i, a := range args {
			if out[i] = a; strings.HasPrefix(a, "var/") {
				out[i] = filepath.Join(work, a)
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	script := func(s string) (string, error) {
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", s)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
		cmd.WaitDelay = 5 * time.Second
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	e := startAfter(t, pair.Options{Dir: varDir, LifecycleArgs: absolute(lifecycleArgs), OrderArgs: absolute(orderArgs)}, func(*pair.Pair) {
		if out, err := script(before); err != nil {
			t.Fatalf("the commands before the services: %v\n%s", err, out)
		}
	})
	after = strings.NewReplacer("localhost:50051", e.OrderAddr, "localhost:50052", e.LifecycleAddr).Replace(after)
	if strings.Contains(after, ":5005") {
		t.Fatalf("the commands still mention a default port after pointing them at the test's pair:\n%s", after)
	}
	out, err := script(after)
	if err != nil {
		t.Fatalf("the commands after the services: %v\n%s", err, out)
	}
	for _, want := range []string{`"productId": "dv-single"`, `"status": "SERVING"`, "Code: PermissionDenied",
		"CreateBundle is for certhosting-order only"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(e.Logs(), "tls=true mutual_tls=true") || !strings.Contains(e.Logs(), "lifecycle_tls=true lifecycle_mutual_tls=true") {
		t.Error("the services' logs do not show TLS with client certificates on the lifecycle service and towards it")
	}
}

// splitServiceLines splits a README shell block at the lines that start a service in the
// background ("bin/certhosting-... -flags ... &", continuation lines joined): the commands before
// the first, those after, and each service's flags by the binary's path.
func splitServiceLines(block string) (before, after string, services map[string][]string) {
	services = map[string][]string{}
	joined := strings.ReplaceAll(block, "\\\n", " ")
	for _, line := range strings.SplitAfter(joined, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.HasPrefix(f[0], "bin/certhosting-") && f[len(f)-1] == "&" {
			services[f[0]] = f[1 : len(f)-1]
			continue
		}
		if len(services) == 0 {
			before += line
		} else {
			after += line
		}
	}
	return before, after, services
}
