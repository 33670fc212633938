package caconfig_test

import (
	"testing"

	"github.com/certhosting/certhosting/pkg/ca/caconfig"
)

// FuzzParse: whatever the file holds, Parse returns a configuration or an error, never panics;
// a configuration it accepts is valid, and routes every product somewhere.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"authorities": {"local": {"type": "local"}}, "products": {"*": "local"}}`,
		`{"authorities": {"local": {"type": "local"}, "le": {"type": "acme", "directory_url": "https://acme.example/dir",
			"email": "ops@example.com", "db": "var/acme.db"}, "p": {"type": "plugin", "address": "127.0.0.1:1", "timeout": "5s"}},
			"products": {"DV": "le", "OV": "p", "*": "local"}}`,
		`{"authorities": {"x": {"type": "local", "colour": "red"}}, "products": {"*": "x"}}`,
		`{} {}`, `[]`, `null`, ``, `{"authorities": null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := caconfig.Parse(raw)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a configuration Validate refuses: %v", err)
		}
		if _, ok := c.Products["*"]; !ok {
			t.Fatal("Parse accepted a configuration with no default route")
		}
	})
}
