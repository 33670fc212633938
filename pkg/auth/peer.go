package auth

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// WithServiceIdentity makes a service key count only on a connection whose client certificate,
// verified by mutual TLS, names identity (as a DNS name or the CommonName); on any other
// connection a service-role call is PermissionDenied. It returns i.
//
// A service key is a bearer secret: whoever holds a copy can call CreateBundle. Mutual TLS is
// what proves the caller is the order service process itself, with a private key that never
// leaves it; the key then only says which account it acts for. Only the service role is bound
// this way: customer and support keys are people's, and their certificates (if any) say nothing
// about them. Set it only when the listener requires client certificates (-tls-client-ca):
// without mutual TLS there is no verified certificate, and every service call would be refused.
func (i *Interceptor) WithServiceIdentity(identity string) *Interceptor {
	i.serviceIdentity = identity
	return i
}

// checkServiceIdentity refuses a service-role call whose connection's verified client
// certificate does not name the configured service identity.
func (i *Interceptor) checkServiceIdentity(ctx context.Context, method string) error {
	if i.serviceIdentity == "" {
		return nil
	}
	name := method[strings.LastIndex(method, "/")+1:]
	leaf := VerifiedClientCert(ctx)
	if leaf == nil {
		return apierr.PermissionDenied("%s needs the client certificate of %s (mutual TLS); this connection has none verified",
			name, i.serviceIdentity)
	}
	if !CertificateNames(leaf, i.serviceIdentity) {
		return apierr.PermissionDenied("%s is for %s only: the connection's client certificate names %s",
			name, i.serviceIdentity, describeCert(leaf))
	}
	return nil
}

// VerifiedClientCert returns the leaf of the client certificate chain that the TLS handshake of
// the call's connection verified, or nil (plaintext, TLS without client certificates, or a
// certificate that was presented but not verified).
func VerifiedClientCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

// CertificateNames says whether cert names identity, exactly, as one of its DNS names or as its
// CommonName (client certificates often carry only the latter).
func CertificateNames(cert *x509.Certificate, identity string) bool {
	return identity != "" && (slices.Contains(cert.DNSNames, identity) || cert.Subject.CommonName == identity)
}

func describeCert(c *x509.Certificate) string {
	names := append([]string{}, c.DNSNames...)
	if c.Subject.CommonName != "" && !slices.Contains(names, c.Subject.CommonName) {
		names = append(names, c.Subject.CommonName)
	}
	if len(names) == 0 {
		return "no name"
	}
	return fmt.Sprintf("%q", names)
}
