package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Every paid day covered (docs/lifecycle.md, "Every paid day covered"): a customer without hosting
// re-issues within the instance's year when the CA's certificates are shorter than a year
// (ReissueCertificate), and any 2- or 3-year bundle can be hosted later (EnableHosting).

// ReissueCertificate implements LifecycleService.ReissueCertificate.
func (s *Server) ReissueCertificate(ctx context.Context, req *lifecyclev1.ReissueCertificateRequest) (*lifecyclev1.ReissueCertificateResponse, error) {
	_, c, err := s.callersCertificate(ctx, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	b, err := s.Store.BundleOf(ctx, c.BundleID)
	if err != nil {
		return nil, err
	}
	if b.Hosting {
		return nil, apierr.FailedPrecondition("bundle %s is hosted: the service re-issues its certificates by itself before they expire", b.ID)
	}
	if !holdsCertificate(c) || c.State == state.Hosted {
		return nil, apierr.FailedPrecondition("certificate %s is %s; only an ISSUED instance (or an EXPIRED or REVOKED one within its year) can be re-issued", c.ID, c.State)
	}
	now := s.Clock.Now()
	if end := db.FromNullMicros(c.CoverageEnd); !now.Before(end) {
		return nil, apierr.FailedPrecondition("certificate %s's subscription year ended at %s; activate the next instance instead",
			c.ID, end.Format(time.RFC3339))
	}
	if c.CurrentApplicationID.Valid {
		last, err := s.Store.ApplicationOf(ctx, c.AccountID, c.CurrentApplicationID.String)
		if err != nil {
			return nil, err
		}
		if last.Status == store.AppSubmitting || last.Status == store.AppPending {
			return nil, apierr.FailedPrecondition("certificate %s already has a re-issue in flight: application %s is %s", c.ID, last.ID, last.Status)
		}
	}
	inUse, err := s.Store.Issuance(ctx, c.AccountID, c.CurrentIssuanceID.String)
	if err != nil {
		return nil, err
	}
	prev, err := s.Store.ApplicationOf(ctx, c.AccountID, inUse.ApplicationID)
	if err != nil {
		return nil, err
	}
	info, err := infoFromRow(prev)
	if err != nil {
		return nil, err
	}
	// Same names, a new key: the customer's own (a CSR for the same names), or one the service
	// generates, of the algorithm asked for or the one in use.
	switch {
	case req.GetCsrPem() != "":
		if req.GetKeyAlgorithm() != lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED {
			return nil, apierr.InvalidArgument("key_algorithm", "must be unspecified with csr_pem: the CSR's key is used")
		}
		if _, err := parseCustomerCSR(req.GetCsrPem(), info.Domains); err != nil {
			return nil, apierr.InvalidArgument("csr_pem", "%v", err)
		}
		info.CSRPEM, info.KeyAlgorithm = req.GetCsrPem(), KeyCustomer
	case req.GetKeyAlgorithm() != lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED:
		alg, ok := keyAlgorithmFromProto[req.GetKeyAlgorithm()]
		if !ok {
			return nil, apierr.InvalidArgument("key_algorithm", "unknown key algorithm %d", int32(req.GetKeyAlgorithm()))
		}
		info.CSRPEM, info.KeyAlgorithm = "", alg
	default:
		info.CSRPEM, info.KeyAlgorithm = "", keyAlgorithmOr(info.KeyAlgorithm)
	}
	resp, err := s.submitNow(ctx, c, b, info, state.ActorCustomer, c.CurrentIssuanceID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.ReissueCertificateResponse{Certificate: resp.Certificate, Instructions: resp.Instructions}, nil
}

// EnableHosting implements LifecycleService.EnableHosting. The bundle becomes what it would be
// had it been bought with hosting: its newest certificate in use becomes HOSTED, with its renewal
// planned by the rules of a hosted bundle (the first application's information is the
// application behind that certificate), or, with no certificate yet, the first one issued will be.
// Renewals use keys the service generates, even where the customer brought a CSR before.
func (s *Server) EnableHosting(ctx context.Context, req *lifecyclev1.EnableHostingRequest) (*lifecyclev1.EnableHostingResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		b, err := tx.Bundle(req.GetBundleId())
		if err != nil || b.AccountID != who.AccountID {
			return apierr.NotFound("bundle", req.GetBundleId())
		}
		if b.Hosting {
			return nil // already hosted: nothing to do
		}
		if b.SubscriptionYears < 2 {
			return apierr.FailedPrecondition("bundle %s is a %d-year subscription; hosting needs 2 or 3 years", b.ID, b.SubscriptionYears)
		}
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		if certs[0].State == state.Cancelled {
			return apierr.FailedPrecondition("bundle %s was cancelled (its order was refunded)", b.ID)
		}
		b.Hosting, b.HostingStatus = true, store.HostingWaiting
		if err := tx.RefreshCurrent(&b); err != nil {
			return err
		}
		if !b.CurrentCertificateID.Valid && !awaitingFirst(certs) {
			return apierr.FailedPrecondition("bundle %s has no certificate in use and no instance waiting for an application; "+
				"re-issue or activate an instance first, then enable hosting", b.ID)
		}
		at := certs[0]
		if b.CurrentCertificateID.Valid {
			for _, c := range certs {
				if c.ID == b.CurrentCertificateID.String {
					at = c
				}
			}
			iss, err := tx.Issuance(b.CurrentIssuanceID.String)
			if err != nil {
				return err
			}
			a, err := tx.Application(iss.ApplicationID)
			if err != nil {
				return err
			}
			b.TemplateApplicationID = sql.NullString{String: a.ID, Valid: true}
			b.HostingStatus = store.HostingActive
			if err := tx.Transition(&at, state.Hosted, state.ActorCustomer, store.EventHosted,
				"hosting enabled: the service renews this certificate before it expires"); err != nil {
				return err
			}
			s.scheduleHosted(&at, b, a, db.FromMicros(iss.NotBefore), db.FromMicros(iss.NotAfter), now)
			if err := tx.SaveSchedule(&at); err != nil {
				return err
			}
		}
		if err := tx.SaveBundle(&b, nil); err != nil {
			return err
		}
		if err := tx.Audit(auth.NewAuditEvent(now, b.AccountID, auth.AuditHostingChanged, who, b.ID, "hosting enabled")); err != nil {
			return err
		}
		return tx.Event(store.Event{AccountID: b.AccountID, BundleID: b.ID, CertificateID: at.ID, Type: store.EventHostingEnabled,
			From: at.State, To: at.State, Actor: state.ActorCustomer,
			Reason: fmt.Sprintf("hosting enabled for the rest of the %d-year subscription", b.SubscriptionYears)})
	})
	if err != nil {
		return nil, err
	}
	s.wakeTicker()
	b, views, err := s.Store.BundleView(ctx, who.AccountID, req.GetBundleId())
	if err != nil {
		return nil, err
	}
	s.Log.Info("hosting enabled", "bundle_id", b.ID, "account", b.AccountID, "status", b.HostingStatus)
	return &lifecyclev1.EnableHostingResponse{Bundle: bundleProto(b, views)}, nil
}

// awaitingFirst reports whether one of a bundle's instances is waiting for, or has, an application
// of the customer's: the certificate it brings will be the hosted one.
func awaitingFirst(certs []store.Certificate) bool {
	for _, c := range certs {
		switch c.State {
		case state.PendingApplication, state.Validating, state.ValidationFailed:
			return true
		}
	}
	return false
}
