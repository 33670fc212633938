// Package tlsfiles is the transport security both services build from PEM files: a server's
// certificate, read again when its files change so a renewed certificate is served without a
// restart; mutual TLS from a client CA file; a client's TLS towards another service; and the rule
// that plaintext stays on loopback.
//
// Design decisions:
//   - The certificate and key are re-read lazily, from the handshake (tls.Config's
//     GetCertificate / GetClientCertificate), when the files' modification time or size changed,
//     looked at most once per Options.Interval (a second). No watcher goroutine, nothing to stop;
//     an idle server reads nothing, and a busy one stats two files a second.
//   - A new pair that does not load (a file missing or half written, a key that does not match the
//     certificate, an expired certificate) keeps the previous one and logs a warning once per
//     change of the files. Writing the certificate and then the key is therefore safe: the
//     mismatched pair in between is skipped, and the complete one is picked up when the key lands.
//   - The client CA file (mutual TLS) and a client's root file are read once, at start: a CA
//     rotation is rarer and needs a restart.
//   - Plaintext is for loopback only: a listener or a peer beyond it needs TLS, or the explicit
//     -insecure-plaintext of an operator whose network is protected otherwise. Loopback is decided
//     from the address as given (127.0.0.0/8, ::1, localhost), not by resolving names, so a host
//     name that happens to resolve to loopback is still refused.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// DefaultInterval is how often a KeyPair looks at its files, at most.
const DefaultInterval = time.Second

// Options tune a KeyPair; the zero value is the real clock, DefaultInterval and no logging.
type Options struct {
	Clock    clockwork.Clock
	Interval time.Duration
	Log      *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// KeyPair is a certificate and its private key from two PEM files, read again when they change.
// It is safe for concurrent use; its Certificate serves tls.Config.GetCertificate.
type KeyPair struct {
	certFile, keyFile string
	opts              Options

	mu        sync.Mutex
	cert      *tls.Certificate
	seen      fileState // the files as last looked at, whether they loaded or not
	nextCheck time.Time
}

// fileState is what tells that a file changed: its modification time and size. The zero value
// stands for files that could not be looked at.
type fileState struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func statFiles(certFile, keyFile string) (fileState, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileState{}, err
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileState{}, err
	}
	return fileState{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// LoadKeyPair reads the pair. Unlike a reload, a first read that fails is an error: a service
// must not start without a certificate.
func LoadKeyPair(certFile, keyFile string, o Options) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile, opts: o.withDefaults()}
	st, err := statFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := loadPair(certFile, keyFile, k.opts.Clock.Now())
	if err != nil {
		return nil, err
	}
	k.cert, k.seen, k.nextCheck = cert, st, k.opts.Clock.Now().Add(k.opts.Interval)
	return k, nil
}

// loadPair reads and checks a pair: the key must match the certificate, and the certificate must
// not have expired.
func loadPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if now.After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("%s expired at %s", certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &cert, nil
}

// Certificate returns the current certificate, first reading the files again if they changed
// since they were last looked at (at most once per interval). It never fails once loaded: a pair
// that does not load keeps the previous certificate.
func (k *KeyPair) Certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.opts.Clock.Now()
	if now.Before(k.nextCheck) {
		return k.cert, nil
	}
	k.nextCheck = now.Add(k.opts.Interval)
	st, err := statFiles(k.certFile, k.keyFile)
	if st == k.seen {
		return k.cert, nil
	}
	k.seen = st
	if err == nil {
		var cert *tls.Certificate
		if cert, err = loadPair(k.certFile, k.keyFile, now); err == nil {
			k.cert = cert
			k.opts.Log.Info("TLS certificate reloaded", "cert", k.certFile, "serial", cert.Leaf.SerialNumber.Text(16),
				"not_after", cert.Leaf.NotAfter)
			return k.cert, nil
		}
	}
	k.opts.Log.Warn("TLS certificate files changed but do not load; keeping the previous certificate",
		"cert", k.certFile, "key", k.keyFile, "err", err, "serial", k.cert.Leaf.SerialNumber.Text(16))
	return k.cert, nil
}

// ServerConfig is a TLS server configuration serving pair's current certificate. With a
// clientCAFile it is mutual TLS: every client must present a certificate that a CA in that PEM
// file signed, or its handshake fails.
func ServerConfig(pair *KeyPair, clientCAFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.Certificate() },
	}
	if clientCAFile != "" {
		pool, err := CertPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig is a TLS client configuration trusting the CAs in caFile, expecting serverName
// (empty: the host of the address dialled), and presenting pair's current certificate when pair
// is not nil (mutual TLS).
func ClientConfig(caFile, serverName string, pair *KeyPair) (*tls.Config, error) {
	if caFile == "" {
		return nil, errors.New("a TLS client needs the CA file that verifies the server")
	}
	pool, err := CertPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: serverName}
	if pair != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.Certificate() }
	}
	return cfg, nil
}

// CertPool reads a PEM bundle of CA certificates. One without a certificate is an error, not an
// empty pool that would trust nothing and fail every handshake with a less helpful message.
func CertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
