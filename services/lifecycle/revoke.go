package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Revocation and re-key (docs/lifecycle.md, "Revocation and re-key").

// revocationReasons are the RFC 5280 reasons a customer may give, by the API's enum.
var revocationReasons = map[lifecyclev1.RevocationReason]ca.RevocationReason{
	lifecyclev1.RevocationReason_REVOCATION_REASON_UNSPECIFIED:            ca.RevokeUnspecified,
	lifecyclev1.RevocationReason_REVOCATION_REASON_KEY_COMPROMISE:         ca.RevokeKeyCompromise,
	lifecyclev1.RevocationReason_REVOCATION_REASON_AFFILIATION_CHANGED:    ca.RevokeAffiliationChanged,
	lifecyclev1.RevocationReason_REVOCATION_REASON_SUPERSEDED:             ca.RevokeSuperseded,
	lifecyclev1.RevocationReason_REVOCATION_REASON_CESSATION_OF_OPERATION: ca.RevokeCessationOfOperation,
}

// replaced reports whether revoking a hosted certificate for reason applies for its replacement
// at once: the key is gone (keyCompromise) or the customer wants a new certificate (superseded).
// The other reasons say the names are no longer the customer's to use.
func replaced(reason ca.RevocationReason) bool {
	return reason == ca.RevokeKeyCompromise || reason == ca.RevokeSuperseded
}

// RevokeCertificate implements LifecycleService.RevokeCertificate. The CA revokes first, outside
// any transaction; only then is the revocation recorded, so a CA that cannot be reached changes
// nothing (Unavailable), and a revocation the CA made is recorded even if the instance moved on
// meanwhile (a renewal landed: the revoked certificate is then no longer the one in use).
func (s *Server) RevokeCertificate(ctx context.Context, req *lifecyclev1.RevokeCertificateRequest) (*lifecyclev1.RevokeCertificateResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	reason, ok := revocationReasons[req.GetReason()]
	if !ok {
		return nil, apierr.InvalidArgument("reason", "%d is not a reason a subscriber may give (UNSPECIFIED, KEY_COMPROMISE, AFFILIATION_CHANGED, SUPERSEDED, CESSATION_OF_OPERATION)",
			int32(req.GetReason()))
	}
	c, err := s.Store.CertificateOf(ctx, who.AccountID, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	if err := state.Check(c.State, state.Revoked, state.ActorCustomer); err != nil || !c.CurrentIssuanceID.Valid {
		return nil, apierr.FailedPrecondition("certificate %s is %s; only an ISSUED or HOSTED certificate can be revoked", c.ID, c.State)
	}
	iss, err := s.Store.Issuance(ctx, c.AccountID, c.CurrentIssuanceID.String)
	if err != nil {
		return nil, err
	}
	a, err := s.Store.ApplicationOf(ctx, c.AccountID, iss.ApplicationID)
	if err != nil {
		return nil, err
	}
	if a.Imported {
		return nil, apierr.FailedPrecondition("certificate %s's certificate %s was imported: revoke it at the CA that issued it "+
			"(RenewCertificate replaces it, for a hosted bundle)", c.ID, iss.Serial)
	}
	client, err := s.caOf(a)
	if err != nil {
		return nil, err
	}
	revoker, ok := client.(ca.Revoker)
	if !ok {
		return nil, apierr.FailedPrecondition("CA %q, which issued certificate %s, does not revoke certificates", a.CAName, iss.Serial)
	}
	cctx, cancel := context.WithTimeout(ctx, caCallTimeout)
	err = revoker.Revoke(cctx, []byte(iss.ChainPEM), reason)
	cancel()
	switch {
	case errors.Is(err, ca.ErrNotRevocable):
		return nil, apierr.FailedPrecondition("CA %q refuses to revoke certificate %s: %v", a.CAName, iss.Serial, err)
	case err != nil:
		s.Log.Warn("CA revoke failed", "certificate_id", c.ID, "serial", iss.Serial, "ca", a.CAName, "err", err)
		return nil, apierr.Unavailable("the CA is unavailable right now; nothing was revoked; try again")
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		if err := tx.RevokeIssuance(iss.ID, int(reason)); err != nil {
			return err
		}
		if err := tx.Audit(auth.NewAuditEvent(now, c.AccountID, auth.AuditCertificateRevoked, who, c.ID,
			fmt.Sprintf("serial %s, reason %d", iss.Serial, int(reason)))); err != nil {
			return err
		}
		cur, err := tx.Certificate(c.ID)
		if err != nil {
			return err
		}
		if cur.CurrentIssuanceID != c.CurrentIssuanceID || (cur.State != state.Hosted && cur.State != state.Issued) {
			return nil // the revoked certificate is no longer the instance's in use: recorded on the issuance only
		}
		return s.recordRevoked(tx, cur, iss, reason, now)
	})
	if err != nil {
		return nil, err
	}
	s.Log.Info("certificate revoked", "certificate_id", c.ID, "serial", iss.Serial, "reason", int(reason), "account", who.AccountID)
	s.wakeTicker()
	view, err := s.Store.CertificateView(ctx, who.AccountID, c.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RevokeCertificateResponse{Certificate: certificateProto(view)}, nil
}

// recordRevoked makes instance cur REVOKED (its certificate iss revoked for reason), refreshes the
// bundle's current certificate, and for a hosted bundle's HOSTED certificate revoked for
// keyCompromise or superseded applies for the replacement at once (unless a renewal is in flight
// already: it replaces the revoked certificate when issued).
func (s *Server) recordRevoked(tx *store.Tx, cur store.Certificate, iss store.Issuance, reason ca.RevocationReason, now time.Time) error {
	wasHosted := cur.State == state.Hosted
	cur.RenewAt, cur.ExpireAt, cur.EscalateAt, cur.ARICheckAt, cur.RetryAt = nullTime, nullTime, nullTime, nullTime, nullTime
	if err := tx.Transition(&cur, state.Revoked, state.ActorCustomer, store.EventRevoked,
		fmt.Sprintf("certificate %s revoked (RFC 5280 reason %d)", iss.Serial, int(reason))); err != nil {
		return err
	}
	if err := tx.SaveSchedule(&cur); err != nil {
		return err
	}
	b, err := tx.Bundle(cur.BundleID)
	if err != nil {
		return err
	}
	if err := tx.RefreshCurrent(&b); err != nil {
		return err
	}
	if wasHosted && !b.CurrentIssuanceID.Valid && b.HostingStatus == store.HostingActive {
		b.HostingStatus = store.HostingLapsed
		if err := tx.Event(store.Event{AccountID: cur.AccountID, BundleID: b.ID, CertificateID: cur.ID, Type: store.EventCoverageLapsed,
			From: cur.State, To: cur.State, Actor: state.ActorCustomer,
			Reason: "the certificate in use was revoked; coverage lapsed until its replacement is issued"}); err != nil {
			return err
		}
	}
	if err := tx.SaveBundle(&b, nil); err != nil {
		return err
	}
	if !wasHosted || !replaced(reason) || b.RenewalApplicationID.Valid || !b.T0.Valid {
		return nil
	}
	next := DecideSuccessor(db.FromMicros(b.T0.Int64), b.SubscriptionYears, cur.Sequence, now, now)
	why := fmt.Sprintf("replacement of revoked certificate %s with a new key: instance %d, requested to end at %s",
		iss.Serial, next.Sequence, next.NotAfter.Format(time.RFC3339))
	_, err = s.applySuccessor(tx, &b, cur, iss, next, state.ActorCustomer, why, now, "")
	return err
}

// RenewCertificate implements LifecycleService.RenewCertificate: the successor of the certificate
// in use is applied for at once, for the instance whose subscription year is under way (the
// successor takes over now), with the template's information and a new key.
func (s *Server) RenewCertificate(ctx context.Context, req *lifecyclev1.RenewCertificateRequest) (*lifecyclev1.RenewCertificateResponse, error) {
	who, c, err := s.callersCertificate(ctx, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		return s.renewNow(tx, c.ID, state.ActorCustomer, func(iss store.Issuance, next Successor) string {
			return fmt.Sprintf("renewal asked for by the customer, replacing certificate %s: instance %d, requested to end at %s",
				iss.Serial, next.Sequence, next.NotAfter.Format(time.RFC3339))
		}, now, tracing.Inject(ctx))
	})
	if err != nil {
		return nil, err
	}
	s.wakeTicker()
	view, err := s.Store.CertificateView(ctx, who.AccountID, c.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RenewCertificateResponse{Certificate: certificateProto(view)}, nil
}

// renewNow applies at once for the successor of instance certID's certificate, for the instance
// whose subscription year is under way, with the template's information and a new key: what
// RenewCertificate does for a customer and a mass re-issue (reissue.go) does for an operator.
// why gives the RENEWAL_STARTED event's reason.
func (c *core) renewNow(tx *store.Tx, certID string, actor state.Actor, why func(store.Issuance, Successor) string, now time.Time, traceContext string) error {
	r, err := renewable(tx, certID, now)
	if err != nil {
		return err
	}
	return c.startRenewal(tx, r, actor, why(r.iss, r.next), now, traceContext)
}

// renewal is a certificate renewNow may renew, as renewable read it.
type renewal struct {
	cur  store.Certificate
	b    store.Bundle
	iss  store.Issuance
	next Successor
}

// renewable reads what renewing certID now needs, writing nothing. It answers FailedPrecondition
// when the certificate is not a HOSTED (or REVOKED) certificate of a hosted bundle, a renewal is in
// flight already, or the subscription has ended.
func renewable(tx *store.Tx, certID string, now time.Time) (renewal, error) {
	cur, err := tx.Certificate(certID)
	if err != nil {
		return renewal{}, err
	}
	b, err := tx.Bundle(cur.BundleID)
	if err != nil {
		return renewal{}, err
	}
	if !b.Hosting {
		return renewal{}, apierr.FailedPrecondition("bundle %s is not hosted: re-issue its certificates with ReissueCertificate", b.ID)
	}
	if (cur.State != state.Hosted && cur.State != state.Revoked) || !cur.CurrentIssuanceID.Valid {
		return renewal{}, apierr.FailedPrecondition("certificate %s is %s; only a HOSTED (or REVOKED) certificate of a hosted bundle is renewed", cur.ID, cur.State)
	}
	if b.RenewalApplicationID.Valid {
		return renewal{}, apierr.FailedPrecondition("bundle %s already has a renewal in flight: application %s", b.ID, b.RenewalApplicationID.String)
	}
	if !b.T0.Valid || !b.TemplateApplicationID.Valid {
		return renewal{}, apierr.FailedPrecondition("bundle %s has no first certificate yet", b.ID)
	}
	iss, err := tx.Issuance(cur.CurrentIssuanceID.String)
	if err != nil {
		return renewal{}, err
	}
	next := DecideSuccessor(db.FromMicros(b.T0.Int64), b.SubscriptionYears, cur.Sequence, now, now)
	if next.Kind == HostingEnds {
		return renewal{}, apierr.FailedPrecondition("bundle %s's subscription has ended", b.ID)
	}
	return renewal{cur: cur, b: b, iss: iss, next: next}, nil
}

// startRenewal writes the renewal renewable found: the certificate's own schedule is cleared (its
// successor is under way) and the successor applied for.
func (c *core) startRenewal(tx *store.Tx, r renewal, actor state.Actor, why string, now time.Time, traceContext string) error {
	r.cur.RenewAt, r.cur.ARICheckAt, r.cur.RetryAt = nullTime, nullTime, nullTime
	if err := tx.SaveSchedule(&r.cur); err != nil {
		return err
	}
	_, err := c.applySuccessor(tx, &r.b, r.cur, r.iss, r.next, actor, why, now, traceContext)
	return err
}

// nullTime is an unset time column.
var nullTime = sql.NullInt64{}
