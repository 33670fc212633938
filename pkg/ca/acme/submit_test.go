package acme_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// offlineClient is a client whose CA cannot be reached: what it decides, it decides alone.
func offlineClient(t *testing.T) *acme.Client {
	t.Helper()
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	c, err := acme.Open(t.Context(), acme.Config{DirectoryURL: "https://127.0.0.1:1/dir",
		DBPath: filepath.Join(t.TempDir(), "acme.db"), Box: box, Challenges: newZoneChallenges(), Zone: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSubmitRefusedLocally: requests no ACME CA can take are verdicts at once, without the CA
// (which is unreachable here); an unknown ref is a verdict too.
func TestSubmitRefusedLocally(t *testing.T) {
	t.Parallel()
	c := offlineClient(t)
	tests := []struct {
		name string
		req  func() ca.Request
		want string
	}{
		{"OV", func() ca.Request {
			r := request(t, "ov", "bdl", "shop.example.com")
			r.Validation = "OV"
			return r
		}, "DV"},
		{"no domains", func() ca.Request {
			r := request(t, "none", "bdl", "shop.example.com")
			r.Domains = nil
			return r
		}, "no domains"},
		{"CSR does not parse", func() ca.Request {
			r := request(t, "garbage", "bdl", "shop.example.com")
			r.CSR = []byte("garbage")
			return r
		}, "does not parse"},
		{"CSR names other domains", func() ca.Request {
			r := request(t, "mismatch", "bdl", "shop.example.com", "www.example.com")
			r.Domains = []string{"shop.example.com"}
			return r
		}, "not the requested domains"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sub, err := c.Submit(t.Context(), tc.req())
			if err != nil {
				t.Fatalf("Submit: %v; want a verdict, not an error", err)
			}
			st, err := c.Status(t.Context(), sub.Ref)
			if err != nil || st.State != ca.Rejected || st.Reason != ca.ReasonPolicy || !strings.Contains(st.Message, tc.want) {
				t.Errorf("Status = %v %s %q, %v; want rejected for policy mentioning %q", st.State, st.Reason, st.Message, err, tc.want)
			}
		})
	}
	st, err := c.Status(t.Context(), "acme_unknown")
	if err != nil || st.State != ca.Rejected || st.Reason != ca.ReasonPolicy {
		t.Errorf("Status(unknown) = %v %s, %v; want rejected for policy", st.State, st.Reason, err)
	}
	// A valid request needs the CA: an error, retried later.
	if _, err := c.Submit(t.Context(), request(t, "ok", "bdl", "shop.example.com")); err == nil {
		t.Error("Submit with the CA unreachable succeeded; want an error")
	}
}

// TestOpenConfig: Open says which setting is wrong.
func TestOpenConfig(t *testing.T) {
	t.Parallel()
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	valid := func() acme.Config {
		return acme.Config{DirectoryURL: "https://ca.example/dir", DBPath: filepath.Join(t.TempDir(), "acme.db"),
			Box: box, Challenges: newZoneChallenges(), Zone: zone}
	}
	tests := []struct {
		name   string
		change func(*acme.Config)
		want   string
	}{
		{"http directory", func(c *acme.Config) { c.DirectoryURL = "http://ca.example/dir" }, "DirectoryURL"},
		{"no database", func(c *acme.Config) { c.DBPath = "" }, "DBPath"},
		{"no box", func(c *acme.Config) { c.Box = nil }, "Box"},
		{"no challenges", func(c *acme.Config) { c.Challenges = nil }, "Challenges"},
		{"no zone", func(c *acme.Config) { c.Zone = "" }, "Zone"},
		{"EAB without key", func(c *acme.Config) { c.EAB = &acme.EAB{KeyID: "kid"} }, "EAB"},
		{"roots that are not PEM", func(c *acme.Config) { c.RootCAs = []byte("nope") }, "RootCAs"},
		{"no roots at all", func(c *acme.Config) { c.NoSystemRoots = true }, "RootCAs"},
	}
	for _, tc := range tests {
		cfg := valid()
		tc.change(&cfg)
		c, err := acme.Open(t.Context(), cfg)
		if err == nil {
			c.Close()
			t.Errorf("%s: Open succeeded", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Open error %q does not name %s", tc.name, err, tc.want)
		}
	}
	c, err := acme.Open(t.Context(), valid())
	if err != nil {
		t.Fatalf("Open(valid config): %v", err)
	}
	c.Close()
}

// TestAccountKeySealed: the account key is in the database only sealed: neither the database
// file nor its WAL holds its DER bytes, and a client opened with another master key cannot open
// it.
func TestAccountKeySealed(t *testing.T) {
	t.Parallel()
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	cfg := acme.Config{DirectoryURL: "https://127.0.0.1:1/dir", DBPath: filepath.Join(t.TempDir(), "acme.db"),
		Box: box, Challenges: newZoneChallenges(), Zone: zone}
	c, err := acme.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	der := c.AccountKeyForTest()
	for _, f := range []string{cfg.DBPath, cfg.DBPath + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(b, der) {
			t.Errorf("%s holds the account key in plain text", filepath.Base(f))
		}
	}
	c.Close()

	again, err := acme.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.AccountKeyForTest(), der) {
		t.Error("reopened client has another account key")
	}
	again.Close()
	cfg.Box, _ = secrets.Parse(secrets.Generate())
	if c, err := acme.Open(t.Context(), cfg); err == nil {
		c.Close()
		t.Error("Open with another master key succeeded; want an error")
	}
}
