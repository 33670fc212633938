package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/certhosting/certhosting/internal/pair"
)

// The README's configuration table names every flag each service's -h lists, so a flag added
// without documenting it fails here.
func TestReadmeListsEveryFlag(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("e2e: needs the built binaries; skipped with -short")
	}
	root, err := pair.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The table: from the Configuration heading to the next heading.
	_, readme, ok := strings.Cut(string(raw), "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	readme, _, _ = strings.Cut(readme, "\n## ")
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	for name, bin := range map[string]string{"certhosting-order": bins.Order, "certhosting-lifecycle": bins.Lifecycle, "certhosting-agent": bins.Agent} {
		// -h prints the flags on stderr and exits 0 (flag.ErrHelp is not an error to main).
		out, err := exec.Command(bin, "-h").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -h: %v\n%s", name, err, out)
		}
		flags := flagLine.FindAllStringSubmatch(string(out), -1)
		if len(flags) < 10 {
			t.Fatalf("%s -h listed %d flags; want its whole flag set:\n%s", name, len(flags), out)
		}
		for _, f := range flags {
			if !strings.Contains(readme, "`-"+f[1]+"`") {
				t.Errorf("%s flag -%s is not in the README's configuration table", name, f[1])
			}
		}
	}
}
