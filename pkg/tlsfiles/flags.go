package tlsfiles

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/credentials"
)

// ServerFlags are a service's listener flags: -tls-cert, -tls-key, -tls-client-ca and
// -insecure-plaintext, the same in both services (and so their environment variables,
// CERTHOSTING_<SERVICE>_TLS_CERT and so on).
type ServerFlags struct {
	Cert, Key, ClientCA string
	InsecurePlaintext   bool
}

// Register defines the flags on fs.
func (f *ServerFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Cert, "tls-cert", "", "serve TLS with this certificate (PEM, the chain after the leaf); re-read when it changes. Empty: plaintext, allowed on loopback only")
	fs.StringVar(&f.Key, "tls-key", "", "the private key (PEM) of -tls-cert; re-read with it")
	fs.StringVar(&f.ClientCA, "tls-client-ca", "", "mutual TLS: every client must present a certificate signed by a CA in this PEM file")
	fs.BoolVar(&f.InsecurePlaintext, "insecure-plaintext", false, "allow plaintext beyond loopback (API keys travel in the clear): only for a network protected otherwise")
}

// Enabled says whether TLS is configured.
func (f ServerFlags) Enabled() bool { return f.Cert != "" || f.Key != "" }

// MutualTLS says whether clients must present certificates.
func (f ServerFlags) MutualTLS() bool { return f.ClientCA != "" }

// Credentials returns the listener's transport security for the address it will listen on: TLS
// from the files (nil KeyPair and credentials: plaintext), or an error when the flags do not go
// together or plaintext is asked for beyond loopback without -insecure-plaintext.
func (f ServerFlags) Credentials(listen string, o Options) (credentials.TransportCredentials, *KeyPair, error) {
	if !f.Enabled() {
		if f.ClientCA != "" {
			return nil, nil, errors.New("-tls-client-ca needs -tls-cert and -tls-key: mutual TLS is TLS first")
		}
		return nil, nil, CheckPlaintext("-listen", listen, f.InsecurePlaintext,
			"give -tls-cert and -tls-key (and -tls-client-ca for mutual TLS)")
	}
	if f.Cert == "" || f.Key == "" {
		return nil, nil, errors.New("-tls-cert and -tls-key go together")
	}
	pair, err := LoadKeyPair(f.Cert, f.Key, o)
	if err != nil {
		return nil, nil, fmt.Errorf("-tls-cert, -tls-key: %w", err)
	}
	cfg, err := ServerConfig(pair, f.ClientCA)
	if err != nil {
		return nil, nil, fmt.Errorf("-tls-client-ca: %w", err)
	}
	return credentials.NewTLS(cfg), pair, nil
}

// CheckPlaintext refuses plaintext to or from addr ("host:port") unless its host is loopback or
// insecure (-insecure-plaintext) is set. flagName names the flag that gave addr; remedy says
// which flags give TLS instead.
func CheckPlaintext(flagName, addr string, insecure bool, remedy string) error {
	if insecure || Loopback(addr) {
		return nil
	}
	return fmt.Errorf("%s %s is not a loopback address, and plaintext there would carry API keys in the clear: %s, "+
		"or set -insecure-plaintext if the network is protected otherwise", flagName, addr, remedy)
}

// Loopback says whether addr ("host:port") names a loopback host: an address in 127.0.0.0/8,
// ::1, or localhost. An empty host (":50051") or 0.0.0.0 is every interface, not loopback; other
// names are not resolved (see the package comment).
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if h := strings.TrimSuffix(strings.ToLower(host), "."); h == "localhost" {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // an IPv6 zone (::1%lo)
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ClientFiles are a client's TLS files towards another service: the CA file that verifies the
// server, the name expected in its certificate (empty: the dialled host), and for mutual TLS the
// client's own certificate and key, re-read when they change like a server's.
type ClientFiles struct {
	CA, Cert, Key, ServerName string
}

// Credentials returns the client's transport security: nil (plaintext) when no CA file is given,
// TLS verifying the server otherwise, and mutual TLS with the certificate and key.
func (f ClientFiles) Credentials(o Options) (credentials.TransportCredentials, error) {
	if f.CA == "" {
		if f.Cert != "" || f.Key != "" || f.ServerName != "" {
			return nil, errors.New("a client certificate or server name needs the CA file that verifies the server")
		}
		return nil, nil
	}
	var pair *KeyPair
	if f.Cert != "" || f.Key != "" {
		if f.Cert == "" || f.Key == "" {
			return nil, errors.New("the client certificate and its key go together")
		}
		var err error
		if pair, err = LoadKeyPair(f.Cert, f.Key, o); err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
	}
	cfg, err := ClientConfig(f.CA, f.ServerName, pair)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}
