package lifecycle

import (
	"context"
	"database/sql"
	"fmt"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// UpdateApplicationTemplate implements LifecycleService.UpdateApplicationTemplate. The template is
// an application row of its own (status TEMPLATE, never sent to a CA), recorded on the instance of
// the certificate in use; the bundle's template_application_id names it from then on, so every
// later automatic application (a renewal, a retry, a replacement) copies it. The template's key
// algorithm stays.
func (s *Server) UpdateApplicationTemplate(ctx context.Context, req *lifecyclev1.UpdateApplicationTemplateRequest) (*lifecyclev1.UpdateApplicationTemplateResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return nil, err
	}
	b, err := s.Store.BundleOf(ctx, req.GetBundleId())
	if err != nil || b.AccountID != who.AccountID {
		return nil, apierr.NotFound("bundle", req.GetBundleId())
	}
	if !b.Hosting {
		return nil, apierr.FailedPrecondition("bundle %s is not hosted: each of its applications carries its own names and contact", b.ID)
	}
	if !b.TemplateApplicationID.Valid {
		return nil, apierr.FailedPrecondition("bundle %s has no first certificate yet: its first application sets what renewals use", b.ID)
	}
	prev, err := s.Store.ApplicationOf(ctx, b.AccountID, b.TemplateApplicationID.String)
	if err != nil {
		return nil, err
	}
	info, err := infoFromRow(prev)
	if err != nil {
		return nil, err
	}
	if len(req.GetDomains()) > 0 {
		if info.Domains, err = checkDomains(b, req.GetDomains()); err != nil {
			return nil, err
		}
	}
	if req.GetContact() != nil {
		if info.Contact, err = checkContact(req.GetContact()); err != nil {
			return nil, err
		}
	}
	if req.GetOrganization() != nil || b.ValidationType == "DV" {
		if info.Organization, err = checkOrganization(b.ValidationType, req.GetOrganization()); err != nil {
			return nil, err
		}
	}
	info.CSRPEM, info.KeyAlgorithm = "", keyAlgorithmOr(info.KeyAlgorithm)
	now := s.Clock.Now()
	caName, authority := s.CAs.Route(b.ProductID, b.ValidationType)
	instr, raw, err := instructionsFor(authority, b.ID, info.Domains)
	if err != nil {
		return nil, err
	}
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		cur, err := tx.Bundle(b.ID)
		if err != nil {
			return err
		}
		if cur.TemplateApplicationID != b.TemplateApplicationID {
			return apierr.FailedPrecondition("bundle %s's template changed meanwhile; read it again and retry", b.ID)
		}
		holder := prev.CertificateID
		if cur.CurrentCertificateID.Valid {
			holder = cur.CurrentCertificateID.String
		}
		a := store.Application{
			ID: ids.New(ids.Application, now), CertificateID: holder, BundleID: b.ID, AccountID: b.AccountID,
			Status: store.AppTemplate, Actor: state.ActorCustomer, CAName: caName, Instructions: raw,
		}
		if err := info.toRow(&a); err != nil {
			return err
		}
		if err := tx.InsertApplication(&a); err != nil {
			return err
		}
		cur.TemplateApplicationID = sql.NullString{String: a.ID, Valid: true}
		if err := tx.SaveBundle(&cur, nil); err != nil {
			return err
		}
		hc, err := tx.Certificate(holder)
		if err != nil {
			return err
		}
		return tx.Event(store.Event{AccountID: b.AccountID, BundleID: b.ID, CertificateID: holder, Type: store.EventTemplateUpdated,
			From: hc.State, To: hc.State, Actor: state.ActorCustomer,
			Reason: fmt.Sprintf("renewals will apply for %v with contact %s", info.Domains, info.Contact.Email)})
	})
	if err != nil {
		return nil, err
	}
	s.Log.Info("application template updated", "bundle_id", b.ID, "account", who.AccountID, "domains", info.Domains)
	resp, err := s.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: b.ID})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.UpdateApplicationTemplateResponse{Bundle: resp.GetBundle(), Instructions: dnsRecordsProto(instr)}, nil
}
