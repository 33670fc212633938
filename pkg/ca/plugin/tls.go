package plugin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// ClientTLS is the lifecycle service's transport security towards a plug-in, from PEM files:
// none (nil, plaintext, for loopback) unless caFile is given; TLS verifying the plug-in's
// certificate against caFile (for serverName, or the address's host when empty) otherwise; and
// mutual TLS when certFile and keyFile give the client's certificate too.
func ClientTLS(caFile, certFile, keyFile, serverName string) (credentials.TransportCredentials, error) {
	if caFile == "" {
		if certFile != "" {
			return nil, errors.New("a client certificate needs the CA file that verifies the plug-in")
		}
		return nil, nil
	}
	pool, err := certPool(caFile)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}

// ServerTLS is a plug-in's transport security, from PEM files: TLS with its certificate, and
// mutual TLS when clientCAFile is given: every caller must then present a certificate signed by
// one of those CAs (in addition to the token), or its connection is refused.
func ServerTLS(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		if cfg.ClientCAs, err = certPool(clientCAFile); err != nil {
			return nil, err
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}

// certPool reads a PEM bundle; one without a certificate is an error, not an empty pool that
// would trust nothing and fail every handshake with a less helpful message.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}
