package localca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
)

// Revocation. Revoke records the time and reason on the certificate's row; CRL signs, with the
// intermediate's key, the list of the revoked certificates that have not expired yet (RFC 5280
// section 5): a relying party that fetches it from the distribution point named in every
// certificate (Config.CRLURL) stops trusting them. The list is made afresh for each request, so it
// is never stale: its number is the time it was made, in microseconds, which only grows, and it
// says to fetch again within CRLValidity.

// CRLValidity is how long a CRL says it is good for (its NextUpdate).
const CRLValidity = 24 * time.Hour

// Revoke implements ca.Revoker. A certificate this CA did not issue is ca.ErrNotRevocable;
// revoking one again succeeds and keeps the first time and reason.
func (c *CA) Revoke(ctx context.Context, chainPEM []byte, reason ca.RevocationReason) error {
	block, _ := pem.Decode(chainPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("%w: no PEM certificate given", ca.ErrNotRevocable)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%w: %v", ca.ErrNotRevocable, err)
	}
	if err := leaf.CheckSignatureFrom(c.intermediate.cert); err != nil {
		return fmt.Errorf("%w: not issued by this CA", ca.ErrNotRevocable)
	}
	serial := fmt.Sprintf("%032x", leaf.SerialNumber) // as stored at issuance
	now := c.clk.Now()
	err = c.db.Write(ctx, func(tx *db.Tx) error {
		var revoked sql.NullInt64
		if err := tx.Get(&revoked, `SELECT revoke_time FROM certificates WHERE serial = ?`, serial); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: serial %s is not in this CA's records", ca.ErrNotRevocable, serial)
		} else if err != nil || revoked.Valid {
			return err
		}
		_, err := tx.Exec(`UPDATE certificates SET revoke_time = ?, revoke_reason = ? WHERE serial = ?`,
			db.Micros(now), int(reason), serial)
		return err
	})
	if err != nil {
		return err
	}
	c.log.Info("certificate revoked", "serial", serial, "reason", int(reason))
	return nil
}

// CRL returns the CA's current certificate revocation list, DER-encoded.
func (c *CA) CRL(ctx context.Context) ([]byte, error) {
	now := c.clk.Now().UTC()
	var rows []struct {
		Serial     string `db:"serial"`
		RevokeTime int64  `db:"revoke_time"`
		Reason     int    `db:"revoke_reason"`
	}
	if err := c.db.Select(ctx, &rows, `SELECT serial, revoke_time, revoke_reason FROM certificates
		WHERE revoke_time IS NOT NULL AND not_after > ? ORDER BY revoke_time, serial`, db.Micros(now)); err != nil {
		return nil, fmt.Errorf("localca: CRL: %w", err)
	}
	entries := make([]x509.RevocationListEntry, 0, len(rows))
	for _, r := range rows {
		serial, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, fmt.Errorf("localca: CRL: stored serial %q is not hexadecimal", r.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: db.FromMicros(r.RevokeTime),
			ReasonCode: r.Reason})
	}
	thisUpdate := now.Truncate(time.Second)
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(now.UnixMicro()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(CRLValidity),
		RevokedCertificateEntries: entries,
	}, c.intermediate.cert, c.intermediate.key)
}
