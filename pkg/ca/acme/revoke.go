package acme

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"

	"github.com/go-acme/lego/v5/acme"

	"github.com/certhosting/certhosting/pkg/ca"
)

var _ ca.Revoker = (*Client)(nil)

// Revoke implements ca.Revoker: a revocation request (RFC 8555 section 7.6) signed with the
// account key, which ordered the certificate. The CA's answer that it is revoked already is
// success; a final refusal (a certificate of another account, a reason the CA does not take) is
// ca.ErrNotRevocable with the CA's words; anything else is transient.
func (c *Client) Revoke(ctx context.Context, chainPEM []byte, reason ca.RevocationReason) error {
	block, _ := pem.Decode(chainPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: no PEM certificate given", ca.ErrNotRevocable)
	}
	core, err := c.getCore(ctx)
	if err != nil {
		return err
	}
	code := uint(reason)
	err = core.Certificates.Revoke(ctx, acme.RevokeCertMessage{
		Certificate: base64.RawURLEncoding.EncodeToString(block.Bytes), Reason: &code})
	if err == nil {
		c.log.Info("certificate revoked", "reason", int(reason))
		return nil
	}
	p := problemOf(err)
	if p != nil && p.Type == acme.AlreadyRevokedErrorType {
		return nil
	}
	if _, final := classifyRequest(p); final {
		return fmt.Errorf("%w: %s", ca.ErrNotRevocable, problemMessage(p))
	}
	return c.transient(ctx, "revoke", err, 0)
}
