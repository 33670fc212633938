package lifecycle

import (
	"context"
	"crypto"
	"database/sql"
	"encoding/json"
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

// caCallTimeout bounds every call to the CA.
const caCallTimeout = 15 * time.Second

// ValidationDNSTXT is the stored validation method of VALIDATION_METHOD_DNS_TXT.
const ValidationDNSTXT = "DNS_TXT"

// appInfo is what an application says, whoever submits it: the customer, or the ticker re-using
// the first application's information.
type appInfo struct {
	Domains          []string
	ValidationMethod string
	Contact          ca.Contact
	Organization     *ca.Organization
	KeyAlgorithm     string
	CSRPEM           string // the customer's CSR, or empty for a system-generated key
}

func (i appInfo) toRow(a *store.Application) error {
	domains, err := json.Marshal(i.Domains)
	if err != nil {
		return err
	}
	contact, err := json.Marshal(i.Contact)
	if err != nil {
		return err
	}
	a.Domains, a.Contact, a.ValidationMethod, a.KeyAlgorithm = string(domains), string(contact), i.ValidationMethod, i.KeyAlgorithm
	if i.Organization != nil {
		org, err := json.Marshal(i.Organization)
		if err != nil {
			return err
		}
		a.Organization = sql.NullString{String: string(org), Valid: true}
	}
	if i.CSRPEM != "" {
		a.CSRPEM = sql.NullString{String: i.CSRPEM, Valid: true}
	}
	if a.Instructions == "" {
		a.Instructions = "[]"
	}
	return nil
}

func infoFromRow(a store.Application) (appInfo, error) {
	var i appInfo
	if err := json.Unmarshal([]byte(a.Domains), &i.Domains); err != nil {
		return appInfo{}, fmt.Errorf("application %s domains: %w", a.ID, err)
	}
	if err := json.Unmarshal([]byte(a.Contact), &i.Contact); err != nil {
		return appInfo{}, fmt.Errorf("application %s contact: %w", a.ID, err)
	}
	if a.Organization.Valid {
		i.Organization = new(ca.Organization)
		if err := json.Unmarshal([]byte(a.Organization.String), i.Organization); err != nil {
			return appInfo{}, fmt.Errorf("application %s organization: %w", a.ID, err)
		}
	}
	i.ValidationMethod, i.KeyAlgorithm, i.CSRPEM = a.ValidationMethod, a.KeyAlgorithm, a.CSRPEM.String
	return i, nil
}

// keyFor returns the CSR to send for an application. A system key is created (and sealed into the row) if the application
// has none yet; the caller persists a.KeySealed before handing the CSR to the CA, so a retry after
// a crash re-sends the same key.
func (c *core) keyFor(a *store.Application, info appInfo) (csrDER []byte, err error) {
	if info.CSRPEM != "" {
		csr, err := parseCustomerCSR(info.CSRPEM, info.Domains)
		if err != nil {
			return nil, fmt.Errorf("customer CSR: %w", err)
		}
		return csr.Raw, nil
	}
	var key crypto.Signer
	if a.KeySealed.Valid {
		key, err = c.openKey(*a)
	} else {
		key, err = generateKey(info.KeyAlgorithm)
		if err == nil {
			var der []byte
			if der, err = marshalKey(key); err == nil {
				a.KeySealed = sql.NullString{String: c.Keys.Seal(der, a.ID), Valid: true}
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return makeCSR(key, info.Domains)
}

// publicKey is the public key an application's certificate must carry.
func (c *core) publicKey(a store.Application, info appInfo) (crypto.PublicKey, error) {
	if info.CSRPEM != "" {
		csr, err := parseCustomerCSR(info.CSRPEM, info.Domains)
		if err != nil {
			return nil, err
		}
		return csr.PublicKey, nil
	}
	if !a.KeySealed.Valid {
		return nil, fmt.Errorf("application %s has no key", a.ID)
	}
	key, err := c.openKey(a)
	if err != nil {
		return nil, err
	}
	return key.Public(), nil
}

// openKey decrypts an application's system-generated key.
func (c *core) openKey(a store.Application) (crypto.Signer, error) {
	der, err := c.Keys.Open(a.KeySealed.String, a.ID)
	if err != nil {
		return nil, fmt.Errorf("application %s key: %w", a.ID, err)
	}
	k, err := parsePKCS8(der)
	if err != nil {
		return nil, fmt.Errorf("application %s key: %w", a.ID, err)
	}
	return k, nil
}

// caRequest builds the CA request for an application of instance seq of bundle b.
func caRequest(a store.Application, b store.Bundle, info appInfo, csr []byte) ca.Request {
	req := ca.Request{
		ID:           a.ID,
		Domains:      info.Domains,
		CSR:          csr,
		Validation:   b.ValidationType,
		Organization: info.Organization,
		Contact:      info.Contact,
		Binding:      b.ID,
	}
	if a.RequestedNotAfter.Valid {
		req.NotAfter = db.FromMicros(a.RequestedNotAfter.Int64)
	} else {
		req.Lifetime = Year
	}
	return req
}

// replaced is the chain (PEM) of the certificate application a renews, for Request.Replaces (an
// ACME CA's renewal information); nil when it renews none. The name is a hint to the CA, so an
// issuance that cannot be read is logged and the application goes without it.
func (c *core) replaced(ctx context.Context, a store.Application) []byte {
	if !a.ReplacesIssuanceID.Valid {
		return nil
	}
	prev, err := c.Store.Issuance(ctx, a.AccountID, a.ReplacesIssuanceID.String)
	if err != nil {
		c.Log.Warn("application sent without the certificate it replaces", "application_id", a.ID,
			"issuance_id", a.ReplacesIssuanceID.String, "err", err)
		return nil
	}
	return []byte(prev.ChainPEM)
}

// SubmitApplication implements LifecycleService.SubmitApplication.
func (s *Server) SubmitApplication(ctx context.Context, req *lifecyclev1.SubmitApplicationRequest) (*lifecyclev1.SubmitApplicationResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	view, err := s.Store.CertificateView(ctx, who.AccountID, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	b, err := s.Store.BundleOf(ctx, view.BundleID)
	if err != nil {
		return nil, err
	}
	info, err := validateApplication(b, req)
	if err != nil {
		return nil, err
	}
	if err := state.Check(view.State, state.Validating, state.ActorCustomer); err != nil {
		return nil, err
	}
	return s.submitNow(ctx, view.Certificate, b, info, state.ActorCustomer, s.replacesOf(ctx, view.Certificate))
}

// replacesOf is the certificate a new application of instance c replaces: the one its last
// application replaced (a resubmission after a failed renewal renews the same certificate), or
// none.
func (s *Server) replacesOf(ctx context.Context, c store.Certificate) sql.NullString {
	if !c.CurrentApplicationID.Valid {
		return sql.NullString{}
	}
	last, err := s.Store.ApplicationOf(ctx, c.AccountID, c.CurrentApplicationID.String)
	if err != nil {
		return sql.NullString{}
	}
	return last.ReplacesIssuanceID
}

// validateApplication checks a SubmitApplicationRequest against the bundle it is for.
func validateApplication(b store.Bundle, req *lifecyclev1.SubmitApplicationRequest) (appInfo, error) {
	domains, err := checkDomains(b, req.GetDomains())
	if err != nil {
		return appInfo{}, err
	}
	switch req.GetValidationMethod() {
	case lifecyclev1.ValidationMethod_VALIDATION_METHOD_UNSPECIFIED, lifecyclev1.ValidationMethod_VALIDATION_METHOD_DNS_TXT:
	default:
		return appInfo{}, apierr.InvalidArgument("validation_method", "unknown validation method %d", int32(req.GetValidationMethod()))
	}
	contact, err := checkContact(req.GetContact())
	if err != nil {
		return appInfo{}, err
	}
	org, err := checkOrganization(b.ValidationType, req.GetOrganization())
	if err != nil {
		return appInfo{}, err
	}
	info := appInfo{Domains: domains, ValidationMethod: ValidationDNSTXT, Contact: contact, Organization: org}
	if req.GetCsrPem() != "" {
		if b.Hosting {
			return appInfo{}, apierr.InvalidArgument("csr_pem", "a hosted bundle needs a system-generated key, because every renewal rotates the key; leave csr_pem empty")
		}
		if req.GetKeyAlgorithm() != lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_UNSPECIFIED {
			return appInfo{}, apierr.InvalidArgument("key_algorithm", "must be unspecified with csr_pem: the CSR's key is used")
		}
		if _, err := parseCustomerCSR(req.GetCsrPem(), domains); err != nil {
			return appInfo{}, apierr.InvalidArgument("csr_pem", "%v", err)
		}
		info.CSRPEM, info.KeyAlgorithm = req.GetCsrPem(), KeyCustomer
		return info, nil
	}
	alg, ok := keyAlgorithmFromProto[req.GetKeyAlgorithm()]
	if !ok {
		return appInfo{}, apierr.InvalidArgument("key_algorithm", "unknown key algorithm %d", int32(req.GetKeyAlgorithm()))
	}
	info.KeyAlgorithm = alg
	return info, nil
}

// RetryApplication implements LifecycleService.RetryApplication.
func (s *Server) RetryApplication(ctx context.Context, req *lifecyclev1.RetryApplicationRequest) (*lifecyclev1.RetryApplicationResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	actor, account := state.ActorCustomer, who.AccountID
	if who.Role == auth.RoleSupport {
		actor, account = state.ActorSupport, ""
	}
	c, err := s.Store.CertificateOf(ctx, account, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	if !c.CurrentApplicationID.Valid {
		return nil, apierr.FailedPrecondition("certificate %s is %s and has no application to retry; submit one", c.ID, c.State)
	}
	last, err := s.Store.ApplicationOf(ctx, c.AccountID, c.CurrentApplicationID.String)
	if err != nil {
		return nil, err
	}
	// What is retried: a rejected application of an instance with no certificate (which is
	// VALIDATION_FAILED), or a rejected renewal of the certificate an instance holds (whatever its
	// state: the renewal status is FAILED).
	if holdsCertificate(c) {
		if last.Status != store.AppRejected {
			return nil, apierr.FailedPrecondition("certificate %s is %s and its last application %s is %s, not rejected: nothing to retry",
				c.ID, c.State, last.ID, last.Status)
		}
	} else if err := state.Check(c.State, state.Validating, actor); err != nil {
		return nil, err
	}
	info, err := infoFromRow(last)
	if err != nil {
		return nil, err
	}
	b, err := s.Store.BundleOf(ctx, c.BundleID)
	if err != nil {
		return nil, err
	}
	if info.CSRPEM == "" {
		info.KeyAlgorithm = keyAlgorithmOr(info.KeyAlgorithm)
	}
	resp, err := s.submitNow(ctx, c, b, info, actor, last.ReplacesIssuanceID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RetryApplicationResponse{Certificate: resp.Certificate, Instructions: resp.Instructions}, nil
}

// submitNow hands an application to the CA while the caller waits, so the caller gets the DNS
// records to publish at once, then records it. If the CA cannot be reached nothing is written
// and the caller gets Unavailable; if the instance changed meanwhile the CA application is
// cancelled and the caller gets FailedPrecondition. (Automatic renewals are submitted by the
// ticker instead, which retries.)
//
// replaces is the certificate the application renews (a re-issue, or a resubmission after a failed
// renewal), named to the CA (for an ACME CA, the order's replaces, RFC 9773) and shown as the
// renewal status of the instance holding it. An instance that holds a certificate keeps its state;
// any other becomes VALIDATING.
func (s *Server) submitNow(ctx context.Context, c store.Certificate, b store.Bundle, info appInfo, actor state.Actor,
	replaces sql.NullString) (*lifecyclev1.SubmitApplicationResponse, error) {
	now := s.Clock.Now()
	a := store.Application{
		ID: ids.New(ids.Application, now), CertificateID: c.ID, BundleID: b.ID, AccountID: c.AccountID,
		Status: store.AppPending, Actor: actor, ReplacesIssuanceID: replaces,
	}
	var authority ca.Client
	a.CAName, authority = s.CAs.Route(b.ProductID, b.ValidationType)
	if err := info.toRow(&a); err != nil {
		return nil, err
	}
	notAfter := RequestedEnd(db.FromNullMicros(b.T0), c.Sequence)
	a.RequestedNotAfter = db.NullMicros(notAfter)
	csr, err := s.keyFor(&a, info)
	if err != nil {
		return nil, err
	}
	req := caRequest(a, b, info, csr)
	req.Replaces = s.replaced(ctx, a)
	cctx, cancel := context.WithTimeout(ctx, caCallTimeout)
	sub, err := authority.Submit(cctx, req)
	cancel()
	if err != nil {
		s.Log.Warn("CA submit failed", "application_id", a.ID, "ca", a.CAName, "err", err)
		return nil, apierr.Unavailable("the CA is unavailable right now; nothing was submitted; try again")
	}
	instr, err := json.Marshal(sub.Instructions)
	if err != nil {
		return nil, err
	}
	a.CARef = sql.NullString{String: sub.Ref, Valid: true}
	a.Instructions = string(instr)
	a.NextPollAt = sql.NullInt64{Int64: db.Micros(now), Valid: true}
	a.TraceContext = tracing.Inject(ctx) // the ticker's status calls continue this call's trace

	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		cur, err := tx.Certificate(c.ID)
		if err != nil {
			return err
		}
		if cur.State != c.State || cur.CurrentApplicationID != c.CurrentApplicationID || cur.CurrentIssuanceID != c.CurrentIssuanceID {
			return apierr.FailedPrecondition("certificate %s changed meanwhile (now %s); look again and retry", c.ID, cur.State)
		}
		if err := tx.InsertApplication(&a); err != nil {
			return err
		}
		reason := fmt.Sprintf("application %s submitted for %v", a.ID, info.Domains)
		if replaces.Valid {
			reason = fmt.Sprintf("application %s submitted for %v, replacing issuance %s", a.ID, info.Domains, replaces.String)
		}
		if err := submitted(tx, &cur, actor, reason); err != nil {
			return err
		}
		cur.CurrentApplicationID = sql.NullString{String: a.ID, Valid: true}
		// A person resubmitted: the automatic retry planned is moot, and the retries of this
		// attempt, if it is rejected, count afresh.
		cur.RetryAt, cur.Retries = sql.NullInt64{}, 0
		if err := tx.SaveSchedule(&cur); err != nil {
			return err
		}
		// The incident's open case, if any (a rejection before), hears of it.
		return noteIncident(tx, b, cur.ID, fmt.Sprintf("resubmitted by the %s as application %s", actor, a.ID))
	})
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), caCallTimeout)
		if cerr := authority.Cancel(cctx, sub.Ref); cerr != nil {
			s.Log.Warn("CA cancel failed", "application_id", a.ID, "err", cerr)
		}
		cancel()
		return nil, err
	}
	s.wakeTicker()
	view, err := s.Store.CertificateView(ctx, c.AccountID, c.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.SubmitApplicationResponse{Certificate: certificateProto(view), Instructions: dnsRecordsProto(sub.Instructions)}, nil
}

// ActivateCertificate implements LifecycleService.ActivateCertificate.
func (s *Server) ActivateCertificate(ctx context.Context, req *lifecyclev1.ActivateCertificateRequest) (*lifecyclev1.ActivateCertificateResponse, error) {
	who, c, err := s.callersCertificate(ctx, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		b, err := tx.Bundle(c.BundleID)
		if err != nil {
			return err
		}
		if b.Hosting {
			return apierr.FailedPrecondition("bundle %s is hosted: its instances are activated automatically when a renewal reaches their subscription year", b.ID)
		}
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		for _, o := range certs {
			if o.Sequence >= c.Sequence {
				break
			}
			if !o.CurrentIssuanceID.Valid {
				return apierr.FailedPrecondition("instance %d (%s) has not been issued yet; activate instances in order", o.Sequence, o.ID)
			}
		}
		cur := certs[c.Sequence-1]
		return tx.Transition(&cur, state.PendingApplication, state.ActorCustomer, store.EventActivated,
			fmt.Sprintf("instance %d activated by the customer", cur.Sequence))
	})
	if err != nil {
		return nil, err
	}
	view, err := s.Store.CertificateView(ctx, who.AccountID, c.ID)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.ActivateCertificateResponse{Certificate: certificateProto(view)}, nil
}

// ExportCertificate implements LifecycleService.ExportCertificate.
func (s *Server) ExportCertificate(ctx context.Context, req *lifecyclev1.ExportCertificateRequest) (*lifecyclev1.ExportCertificateResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	view, err := s.Store.CertificateView(ctx, who.AccountID, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	if !who.Sees(view.BundleID) {
		return nil, apierr.NotFound("certificate", req.GetCertificateId())
	}
	if view.Issuance == nil {
		return nil, apierr.FailedPrecondition("certificate %s is %s and has no certificate issued yet", view.ID, view.State)
	}
	a, err := s.Store.ApplicationOf(ctx, who.AccountID, view.Issuance.ApplicationID)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ExportCertificateResponse{Issuance: issuanceProto(*view.Issuance)}
	if a.KeySealed.Valid {
		der, err := s.Keys.Open(a.KeySealed.String, a.ID)
		if err != nil {
			return nil, err
		}
		resp.PrivateKeyPem = keyPEM(der)
	}
	// The export is on record before the key leaves: if the audit log cannot be written, no key.
	detail := "certificate " + view.Issuance.Serial + " without a private key (the customer's CSR)"
	if resp.PrivateKeyPem != "" {
		detail = "certificate " + view.Issuance.Serial + " and its private key"
	}
	now := s.Clock.Now()
	if err := s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditCertificateExported, who, view.ID, detail))
	}); err != nil {
		return nil, err
	}
	s.Log.Info("certificate exported", "certificate_id", view.ID, "issuance_id", view.Issuance.ID, "account", who.AccountID, "key_id", who.KeyID)
	return resp, nil
}

var errNoTemplate = errors.New("bundle has no template application")
