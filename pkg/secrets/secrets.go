// Package secrets encrypts private keys at rest: AES-256-GCM under a master key that lives outside
// the database (a file, or an environment variable), so a copy of the database alone reveals no
// key. Each ciphertext is bound to the row that holds it (additional authenticated data), so a
// ciphertext copied to another row does not decrypt.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// version prefixes every ciphertext, so the master key can be rotated later without ambiguity.
const version = "v1:"

// Box encrypts and decrypts with one master key.
type Box struct {
	aead cipher.AEAD
}

// New makes a Box from a 32-byte master key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets: master key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// Parse decodes a master key written as base64 (standard or URL alphabet, padded or not).
func Parse(s string) (*Box, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			return New(key)
		}
	}
	return nil, errors.New("secrets: master key is not base64")
}

// Load reads the master key from env (if that variable is set) or else from file.
func Load(env, file string) (*Box, error) {
	if v := os.Getenv(env); v != "" {
		b, err := Parse(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", env, err)
		}
		return b, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("master key: %w (set %s or create the file, e.g. `head -c 32 /dev/urandom | base64 > %s`)", err, env, file)
	}
	b, err := Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}

// Generate returns a new random master key, base64-encoded.
func Generate() string {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(key)
}

// Seal encrypts plaintext for the row identified by context.
func (b *Box) Seal(plaintext []byte, context string) string {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	ct := b.aead.Seal(nonce, nonce, plaintext, []byte(context))
	return version + base64.RawStdEncoding.EncodeToString(ct)
}

// Open decrypts a ciphertext sealed for the same context.
func (b *Box) Open(sealed, context string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, version)
	if !ok {
		return nil, errors.New("secrets: unknown ciphertext version")
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(raw) < b.aead.NonceSize() {
		return nil, errors.New("secrets: malformed ciphertext")
	}
	pt, err := b.aead.Open(nil, raw[:b.aead.NonceSize()], raw[b.aead.NonceSize():], []byte(context))
	if err != nil {
		return nil, errors.New("secrets: ciphertext does not decrypt with this master key and context")
	}
	return pt, nil
}
