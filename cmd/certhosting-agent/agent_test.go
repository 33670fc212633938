package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteAtomic: the file gets the content and the mode asked for whatever was there before,
// and no temporary file is left beside it.
func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(path, []byte("new key"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new key" {
		t.Fatalf("content %q, %v; want %q", b, err, "new key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d files in the directory, want 1 (no temporary left)", len(entries))
	}
}

// TestInstallReload: the reload command's outcome is the deployment's: success, a failure with
// its output, and a timeout.
func TestInstallReload(t *testing.T) {
	for _, tc := range []struct {
		name, command string
		want          string // "" for success, else a part of the error
	}{
		{"success", "test -s fullchain.pem && test -s privkey.pem", ""},
		{"failure with output", "echo 'nginx: [emerg] bad config' >&2; exit 1", "bad config"},
		{"timeout", "sleep 5", "timed out after 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			// The command runs in the agent's directory; the success case checks the files there.
			a := &agent{reload: "cd " + dir + " && " + tc.command, reloadTimeout: 200 * time.Millisecond}
			err := a.install(context.Background(), dir, filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"), "chain", "key")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("install: %v; want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("install: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestTargetFlag: bundle_id=directory, checked.
func TestTargetFlag(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B=/etc/nginx/tls/shop", true},
		{"bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B", false},
		{"shop=/etc/nginx/tls/shop", false},
		{"bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B=", false},
	} {
		err := targetFlag{}.Set(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("Set(%q): %v; want ok %v", tc.in, err, tc.ok)
		}
	}
	f := targetFlag{}
	_ = f.Set("bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B=/a")
	if err := f.Set("bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B=/b"); err == nil {
		t.Error("the same bundle twice was accepted")
	}
}
