package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/internal/pair"
)

// debianPython is Debian's interpreter, which sees Debian's python3-grpcio and python3-protobuf
// (a python3 earlier on PATH may be another one, without them).
const debianPython = "/usr/bin/python3"

// The SDK examples (examples/typescript, examples/python) do the README walkthrough's purchase
// against a pair, both at once on the demo account: a 3-year hosted DV order, paid, its bundle's
// first event followed on WatchEvents, and the application of its PENDING_APPLICATION
// certificate. What they print must be what the service holds.
func TestSDKWalkthroughs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("e2e: starts the services as processes; skipped with -short")
	}
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tsExample := filepath.Join(root, "examples", "typescript", "dist", "walkthrough.js")
	node, tsMissing := exec.LookPath("node")
	if tsMissing == nil {
		if _, err := os.Stat(tsExample); err != nil {
			tsMissing = err
		}
	}
	pyMissing := exec.Command(debianPython, "-c", "import grpc, google.protobuf").Run()
	if tsMissing != nil || pyMissing != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and an SDK example cannot run (`make test` installs Node's packages, compiles the TypeScript example "+
				"and installs Debian's python3-grpcio and python3-protobuf first): TypeScript: %v; Python: %v", tsMissing, pyMissing)
		}
	}

	e := start(t)
	base := append(os.Environ(), "CERTHOSTING_ORDER_ADDR="+e.OrderAddr, "CERTHOSTING_LIFECYCLE_ADDR="+e.LifecycleAddr)
	examples := []struct {
		name, domain string
		missing      error
		cmd          []string
		env          []string
	}{
		{name: "typescript", domain: "ts.example.com", missing: tsMissing, cmd: []string{node, tsExample},
			// The key from a file, as against `make run` (var/demo-api-key).
			env: []string{"CERTHOSTING_API_KEY_FILE=" + e.DemoKeyFile}},
		{name: "python", domain: "py.example.com", missing: pyMissing, cmd: []string{debianPython, filepath.Join(root, "examples", "python", "walkthrough.py")},
			// The package root on the path (pip installs it the same way: TestPythonSDKInstalls), and
			// no bytecode caches written into gen/.
			env: []string{"CERTHOSTING_API_KEY=" + e.DemoKey, "PYTHONPATH=" + filepath.Join(root, "gen", "python"), "PYTHONDONTWRITEBYTECODE=1"}},
	}
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			if ex.missing != nil {
				t.Skipf("cannot run the %s example (`make sdk-examples`, `make deps`): %v", ex.name, ex.missing)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, ex.cmd[0], ex.cmd[1:]...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(append(slices.Clip(base), ex.env...), "CERTHOSTING_DOMAIN="+ex.domain, "CERTHOSTING_CONTACT_EMAIL=ops@"+ex.domain)
			cmd.WaitDelay = 5 * time.Second
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s example: %v\nstdout:\n%s\nstderr:\n%s", ex.name, err, &stdout, &stderr)
			}
			checkSDKWalkthrough(t, e.clients, ex.domain, stdout.String())
		})
	}
}

// checkSDKWalkthrough compares an SDK example's output with what the services hold: its order
// paid with the bundle it names, the bundle's creation event, and its application for domain with
// the DNS record it printed.
func checkSDKWalkthrough(t *testing.T, c clients, domain, out string) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("example output:\n%s", out)
		}
	})
	field := func(re string) []string {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + re + `$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("output has no line matching %q", re)
		}
		return m[1:]
	}
	orderID := field(`order: (ord_\w+)`)[0]
	bundleID := field(`bundle: (\S+)`)[0]
	event := field(`event: \d+ (\w+) certificate (\S+) (\w+) \((.*)\)`)
	certID := field(`certificate: (\S+)`)[0]
	state := field(`state: (\w+)`)[0]
	record := field(`(\S+)\. 60 IN (\w+) "(.*)"`)

	o, err := c.order.GetOrder(t.Context(), &orderv1.GetOrderRequest{OrderId: orderID})
	if err != nil {
		t.Fatalf("GetOrder(%s): %v", orderID, err)
	}
	if got := o.GetOrder(); got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PAID || got.GetBundleId() != bundleID ||
		got.GetSubscriptionYears() != 3 || !got.GetHosting() || got.GetBundleDeliveryTime() == nil {
		t.Errorf("order %s: status %v, bundle %q, %d years, hosting %v, delivered %v; want PAID, bundle %q, 3 years hosted, delivered",
			orderID, got.GetStatus(), got.GetBundleId(), got.GetSubscriptionYears(), got.GetHosting(), got.GetBundleDeliveryTime() != nil, bundleID)
	}
	if want := []string{"EVENT_TYPE_CREATED", certID, "CERTIFICATE_STATE_PENDING_APPLICATION", "order " + orderID + " paid"}; !slices.Equal(event, want) {
		t.Errorf("the bundle's first event printed as %q, want %q", event, want)
	}
	if state != "CERTIFICATE_STATE_VALIDATING" {
		t.Errorf("after SubmitApplication the example printed state %s, want CERTIFICATE_STATE_VALIDATING", state)
	}
	cert, err := c.lifecycle.GetCertificate(t.Context(), &lifecyclev1.GetCertificateRequest{CertificateId: certID})
	if err != nil {
		t.Fatalf("GetCertificate(%s): %v", certID, err)
	}
	app := cert.GetCertificate().GetCurrentApplication()
	if cert.GetCertificate().GetBundleId() != bundleID || cert.GetCertificate().GetSequence() != 1 ||
		!slices.Equal(app.GetDomains(), []string{domain}) || app.GetContact().GetEmail() != "ops@"+domain {
		t.Errorf("certificate %s: bundle %q, instance %d, application for %q by %q; want bundle %q, instance 1, for %s by ops@%s",
			certID, cert.GetCertificate().GetBundleId(), cert.GetCertificate().GetSequence(), app.GetDomains(), app.GetContact().GetEmail(),
			bundleID, domain, domain)
	}
	if ins := app.GetInstructions(); len(ins) != 1 || !slices.Equal(record, []string{ins[0].GetName(), ins[0].GetType(), ins[0].GetValue()}) {
		t.Errorf("the example printed the record %q; the application's instructions are %v", record, ins)
	}
	if want := "_certhosting-validation." + domain; record[0] != want || record[1] != "TXT" {
		t.Errorf("the record printed is %s %s, want a TXT record at %s", record[0], record[1], want)
	}
}

// The Python SDK installs with pip (from a copy of gen/python: pip builds in the source tree) into
// a virtual environment that sees Debian's grpcio and protobuf, without a package index, and
// its stubs import from there.
func TestPythonSDKInstalls(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("e2e: makes a virtual environment; skipped with -short")
	}
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	// venv (with pip, through ensurepip) is Debian's python3-venv, which tools/debian-deps installs
	// with the gRPC runtime: CI must have them.
	if err := exec.Command(debianPython, "-c", "import ensurepip, venv, grpc, google.protobuf").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s lacks venv or the gRPC runtime (tools/debian-deps installs python3-venv and python3-grpcio): %v", debianPython, err)
		}
		t.Skipf("%s lacks venv or the gRPC runtime: %v", debianPython, err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.CopyFS(src, os.DirFS(filepath.Join(root, "gen", "python"))); err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(dir, "venv")
	python := filepath.Join(venv, "bin", "python")
	for _, args := range [][]string{
		{debianPython, "-m", "venv", "--system-site-packages", venv},
		{python, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index", src},
		// From elsewhere than the source, so that the import is the installed package's.
		{python, "-c", "from certhosting.lifecycle.v1 import lifecycle_pb2_grpc; from certhosting.order.v1 import order_pb2; " +
			"import certhosting; print(certhosting.__file__); print(order_pb2.CreateOrderRequest(product_id='dv-single'))"},
	} {
		cmd := exec.CommandContext(t.Context(), args[0], args[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PIP_DISABLE_PIP_VERSION_CHECK=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		if args[1] == "-c" {
			if want := filepath.Join(venv, "lib"); !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, []byte(`product_id: "dv-single"`)) {
				t.Errorf("the installed package, imported, printed:\n%s\nwant it from %s and the message", out, want)
			}
		}
	}
}
