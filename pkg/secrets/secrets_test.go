package secrets

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	box, err := Parse(Generate())
	if err != nil {
		t.Fatal(err)
	}
	other, err := Parse(Generate())
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte("-----BEGIN PRIVATE KEY-----\nsecret\n")
	sealed := box.Seal(plain, "app_1")
	if strings.Contains(sealed, "secret") || !strings.HasPrefix(sealed, "v1:") {
		t.Fatalf("sealed = %q: want a v1 ciphertext without the plaintext", sealed)
	}
	if again := box.Seal(plain, "app_1"); again == sealed {
		t.Error("sealing twice gave the same ciphertext; the nonce must be fresh")
	}
	got, err := box.Open(sealed, "app_1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	for _, tc := range []struct {
		name, sealed, context string
		box                   *Box
	}{
		{"another row", sealed, "app_2", box},
		{"another master key", sealed, "app_1", other},
		{"tampered", sealed[:len(sealed)-2] + "AA", "app_1", box},
		{"unknown version", "v9:" + sealed[3:], "app_1", box},
		{"not base64", "v1:***", "app_1", box},
		{"too short", "v1:AAAA", "app_1", box},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.box.Open(tc.sealed, tc.context); err == nil {
				t.Error("Open succeeded; want an error")
			}
		})
	}
}

func TestParseAndLoad(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if _, err := Parse(" " + enc.EncodeToString(key) + "\n"); err != nil {
			t.Errorf("Parse(%v): %v", enc, err)
		}
	}
	if _, err := Parse(base64.StdEncoding.EncodeToString(key[:16])); err == nil {
		t.Error("a 16-byte key was accepted; want 32 bytes")
	}
	if _, err := Parse("not a key!"); err == nil {
		t.Error("garbage was accepted")
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "master.key")
	if err := os.WriteFile(file, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := Load("CERTHOSTING_TEST_MASTER_KEY_UNSET", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CERTHOSTING_TEST_MASTER_KEY", Generate())
	fromEnv, err := Load("CERTHOSTING_TEST_MASTER_KEY", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromEnv.Open(fromFile.Seal([]byte("x"), "c"), "c"); err == nil {
		t.Error("the environment's key opened the file key's ciphertext: the environment must win over the file")
	}
	if _, err := Load("CERTHOSTING_TEST_MASTER_KEY_UNSET", filepath.Join(dir, "missing")); err == nil ||
		!strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Errorf("Load of a missing file: %v; want an error saying how to make one", err)
	}
}
