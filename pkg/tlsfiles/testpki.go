package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files TestPKI writes in its directory.
const (
	CAFile         = "ca.crt"     // the test CA's certificate: what clients and servers trust
	ServerCertFile = "server.crt" // a server certificate for localhost, 127.0.0.1, ::1 and the hosts given
	ServerKeyFile  = "server.key"
	OrderCertFile  = "order.crt" // the order service's client certificate (its identity)
	OrderKeyFile   = "order.key"
	ClientCertFile = "client.crt" // a client certificate for tools (grpcurl) under mutual TLS
	ClientKeyFile  = "client.key"
)

// ClientIdentity is the name in the tools' client certificate: not the order service's, so it
// cannot call the order service's methods even with the service key.
const ClientIdentity = "certhosting-client"

// TestPKIValidity is how long TestPKI's certificates are valid.
const TestPKIValidity = 365 * 24 * time.Hour

// TestPKI writes a throwaway PKI into dir for trying TLS and mutual TLS on one machine: a CA
// (whose key is not kept: to issue more, run it again), a server certificate, the order
// service's client certificate naming orderIdentity (as CommonName and DNS name), and a client
// certificate for tools. Keys are ECDSA P-256, written 0600; dir is created 0700. Files already
// there are replaced. Not for production: use certificates from your own PKI there.
func TestPKI(dir string, hosts []string, orderIdentity string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(TestPKIValidity)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		Subject:   pkix.Name{CommonName: "certhosting test CA " + now.UTC().Format("2006-01-02T15:04:05Z")},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := sign(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}

	server := &x509.Certificate{Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			server.IPAddresses = append(server.IPAddresses, ip)
		} else if h != "" {
			server.DNSNames = append(server.DNSNames, h)
		}
	}
	leaves := []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{
		{server, ServerCertFile, ServerKeyFile},
		{clientTemplate(orderIdentity), OrderCertFile, OrderKeyFile},
		{clientTemplate(ClientIdentity), ClientCertFile, ClientKeyFile},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		l.tmpl.NotBefore, l.tmpl.NotAfter = notBefore, notAfter
		l.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := sign(l.tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, l.key), "PRIVATE KEY", keyDER, 0o600); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, l.cert), "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func clientTemplate(name string) *x509.Certificate {
	return &x509.Certificate{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}

// sign makes a certificate from tmpl with a random 128-bit serial.
func sign(tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
}

// writePEM replaces path with one PEM block, with mode perm (also when the file was there with
// a wider one). The file is written under a temporary name and renamed, so a server re-reading
// it never sees half a file.
func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, nothing is there
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// DefaultOrderIdentity is the order service's name in its client certificate, which the
// lifecycle service's -order-service-identity expects by default.
const DefaultOrderIdentity = "certhosting-order"
