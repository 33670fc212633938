package caconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "cas.json")
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "TOKEN", token)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		body string
		want []string // substrings of the error; none means the file is valid
	}{
		{"local, ACME for DV and a plug-in for OV/EV", `{
			"authorities": {
				"local": {"type": "local"},
				"le": {"type": "acme", "directory_url": "https://acme-staging-v02.api.letsencrypt.org/directory", "email": "ops@example.com", "db": "var/acme-le.db", "relinquish_authorizations": true},
				"ovev": {"type": "plugin", "address": "127.0.0.1:50060", "token_file": "TOKEN", "timeout": "5s"}
			},
			"products": {"DV": "le", "OV": "ovev", "EV": "ovev", "dv-wildcard": "local", "*": "local"}}`, nil},
		{"negative issuance rate", `{"authorities": {"x": {"type": "local", "max_issuance_rate": -1}}, "products": {"*": "x"}}`,
			[]string{"authorities.x.max_issuance_rate: must be 0 (no limit) or a positive number"}},
		{"unknown field", `{"authorities": {"x": {"type": "local", "colour": "red"}}, "products": {"*": "x"}}`,
			[]string{`unknown field "colour"`}},
		{"every problem at once", `{
			"authorities": {
				"a": {"type": "acme", "directory_url": "http://insecure.example/dir", "email": "nobody", "eab_key_id": "kid"},
				"p": {"type": "plugin", "address": "nowhere", "token_file": "/does/not/exist", "timeout": "soon"},
				"t": {"type": "plugin", "address": "127.0.0.1:50060", "token_file": "TOKEN", "tls_cert_file": "/no/cert.pem", "tls_key_file": "/no/key.pem"},
				"q": {"type": "magic"},
				"r": {}
			},
			"products": {"OV": "a", "dv-single": "missing"}}`,
			[]string{
				"authorities.a.directory_url: must be an https:// URL",
				"authorities.a.email: a contact email is required",
				"authorities.a: eab_key_id and eab_hmac_file go together",
				"authorities.a.db: the ACME client's database path is required",
				"authorities.p.address: must be host:port",
				"authorities.p.token_file:",
				"authorities.p.timeout: must be a positive duration",
				"authorities.t.tls_cert_file: mutual TLS needs tls_ca_file too",
				"authorities.t.tls_cert_file: stat /no/cert.pem",
				"authorities.t.tls_key_file: stat /no/key.pem",
				`authorities.q.type: unknown type "magic"`,
				"authorities.r.type: is required",
				`products: a default route "*" is required`,
				`products.dv-single: names CA "missing"`,
				"products.OV: ACME CAs issue domain-validated certificates",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Load(write(tc.body))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if !f.UsesType(TypeACME) || !f.UsesType(TypePlugin) {
					t.Error("UsesType does not see the routed ACME and plug-in CAs")
				}
				if !f.Authorities["le"].RelinquishAuthorizations {
					t.Error("relinquish_authorizations not read")
				}
				return
			}
			if err == nil {
				t.Fatal("Load accepted an invalid file")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("Default() is invalid: %v", err)
	}
}

// TestIssuanceRates: max_issuance_rate is read per authority; absent means no limit.
func TestIssuanceRates(t *testing.T) {
	f, err := Parse([]byte(`{"authorities": {"x": {"type": "local", "max_issuance_rate": 2.5}, "y": {"type": "local"}}, "products": {"*": "x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.IssuanceRates(); len(got) != 1 || got["x"] != 2.5 {
		t.Errorf("IssuanceRates() = %v, want map[x:2.5]", got)
	}
}
