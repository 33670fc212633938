package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// SupportServer implements lifecyclev1.SupportServiceServer: the dedicated support engineers'
// cases. A customer sees its own account's cases and may add notes; a support engineer (a
// support-role key, named after the engineer) sees every account's cases and may change their
// status and assignee. Nobody else can act across accounts.
type SupportServer struct {
	lifecyclev1.UnimplementedSupportServiceServer
	core
}

// NewSupportServer returns the support server.
func NewSupportServer(c Config) *SupportServer { return &SupportServer{core: core{c}} }

// scope is the account a caller may see cases of: its own, or every account ("") for support.
func scope(p auth.Principal) string {
	if p.Role == auth.RoleSupport {
		return ""
	}
	return p.AccountID
}

var caseStatusToProto = map[string]lifecyclev1.SupportCaseStatus{
	store.CaseOpen:       lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_OPEN,
	store.CaseInProgress: lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_IN_PROGRESS,
	store.CaseResolved:   lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED,
}

func caseStatusFromProto(p lifecyclev1.SupportCaseStatus) (string, bool) {
	for k, v := range caseStatusToProto {
		if v == p {
			return k, true
		}
	}
	return "", false
}

// ListSupportCases implements SupportService.ListSupportCases.
func (s *SupportServer) ListSupportCases(ctx context.Context, req *lifecyclev1.ListSupportCasesRequest) (*lifecyclev1.ListSupportCasesResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	f := store.CaseFilter{AccountID: scope(who), Assignee: req.GetAssignee()}
	if st := req.GetStatus(); st != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_UNSPECIFIED {
		var ok bool
		if f.Status, ok = caseStatusFromProto(st); !ok {
			return nil, apierr.InvalidArgument("status", "unknown support case status %d", int32(st))
		}
	}
	filter := pagetoken.Filter(who.AccountID, string(who.Role), f.Status, f.Assignee)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.SupportCase, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	cs, err := s.Store.ListCases(ctx, f, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListSupportCasesResponse{}
	cs, resp.NextPageToken = pagetoken.Cut(cs, size, filter, func(c store.SupportCase) pagetoken.Position { return pagetoken.Position{Key: c.ID} })
	for _, c := range cs {
		resp.Cases = append(resp.Cases, caseProto(c))
	}
	return resp, nil
}

// GetSupportCase implements SupportService.GetSupportCase.
func (s *SupportServer) GetSupportCase(ctx context.Context, req *lifecyclev1.GetSupportCaseRequest) (*lifecyclev1.GetSupportCaseResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("case_id", ids.SupportCase, req.GetCaseId()); err != nil {
		return nil, err
	}
	c, err := s.Store.GetCase(ctx, scope(who), req.GetCaseId())
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.GetSupportCaseResponse{Case: caseProto(c)}
	// What the engineer needs to help: the instance, the application behind the case and the
	// instance's history. Read with the case's account, which is the caller's own for a customer
	// (GetCase above is scoped) and any for support.
	v, err := s.Store.CertificateView(ctx, c.AccountID, c.CertificateID)
	if err != nil {
		return nil, err
	}
	resp.Certificate = certificateProto(v)
	switch {
	case c.ApplicationID.Valid:
		a, err := s.Store.ApplicationOf(ctx, c.AccountID, c.ApplicationID.String)
		if err != nil {
			return nil, err
		}
		resp.Application = applicationProto(a)
	case v.Application != nil:
		resp.Application = applicationProto(*v.Application)
	}
	es, err := s.Store.ListEvents(ctx, c.AccountID, c.CertificateID, 0, caseHistory)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		resp.Events = append(resp.Events, eventProto(e))
	}
	return resp, nil
}

// caseHistory bounds the events GetSupportCase returns; GetCertificateLifecycle pages past it.
const caseHistory = 500

// maxRequestID bounds CreateSupportCase's request_id, as CreateOrder's.
const maxRequestID = 128

// checkRequestID checks an idempotency key: required, printable ASCII without spaces, at most
// maxRequestID characters (the rule of CreateOrder's request_id).
func checkRequestID(field, v string) error {
	if v == "" {
		return apierr.InvalidArgument(field, "is required")
	}
	if len(v) > maxRequestID {
		return apierr.InvalidArgument(field, "must be at most %d characters, got %d", maxRequestID, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return apierr.InvalidArgument(field, "must be printable ASCII without spaces (character %d is not)", i+1)
		}
	}
	return nil
}

// CreateSupportCase implements SupportService.CreateSupportCase. A customer's case is its own
// incident: the system's reports about the same bundle open or add to their own case (one per
// incident, incidents.go), and the customer's case stays as the customer wrote it. Both go to the
// account's engineer.
func (s *SupportServer) CreateSupportCase(ctx context.Context, req *lifecyclev1.CreateSupportCaseRequest) (*lifecyclev1.CreateSupportCaseResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkRequestID("request_id", req.GetRequestId()); err != nil {
		return nil, err
	}
	bundleID, certID := req.GetBundleId(), req.GetCertificateId()
	if bundleID == "" && certID == "" {
		return nil, apierr.InvalidArgument("bundle_id", "give bundle_id or certificate_id: what the case is about")
	}
	if bundleID != "" {
		if err := ids.Check("bundle_id", ids.Bundle, bundleID); err != nil {
			return nil, err
		}
	}
	if certID != "" {
		if err := ids.Check("certificate_id", ids.Certificate, certID); err != nil {
			return nil, err
		}
	}
	summary := strings.TrimSpace(req.GetSummary())
	if summary == "" {
		return nil, apierr.InvalidArgument("summary", "is required: say what you need")
	}
	if n := utf8.RuneCountInString(summary); n > maxNote {
		return nil, apierr.InvalidArgument("summary", "must be at most %d characters, got %d", maxNote, n)
	}
	if err := apierr.CheckNote("summary", summary); err != nil {
		return nil, err
	}
	// What the case is about, in the caller's account (another account's is NotFound).
	if certID != "" {
		c, err := s.Store.GetCertificate(ctx, who.AccountID, certID)
		if err != nil {
			return nil, err
		}
		if bundleID != "" && c.BundleID != bundleID {
			return nil, apierr.InvalidArgument("certificate_id", "%s is not an instance of bundle %s", certID, bundleID)
		}
		bundleID = c.BundleID
	} else {
		b, certs, err := s.Store.GetBundle(ctx, who.AccountID, bundleID)
		if err != nil {
			return nil, err
		}
		certID = b.CurrentCertificateID.String
		if certID == "" && len(certs) > 0 {
			certID = certs[0].ID
		}
	}
	if !who.Sees(bundleID) {
		return nil, apierr.NotFound("bundle", bundleID)
	}
	now := s.Clock.Now()
	var out store.SupportCase
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		prev, ok, err := tx.CaseByRequest(who.AccountID, req.GetRequestId())
		if err != nil {
			return err
		}
		if ok {
			// A repeat returns the first answer; other content under the same key is a conflict,
			// as for CreateOrder's request_id.
			if prev.BundleID != bundleID || (req.GetCertificateId() != "" && prev.CertificateID != req.GetCertificateId()) || prev.Summary != summary {
				return apierr.AlreadyExists("request_id", "%s opened case %s with other content", apierr.Quote(req.GetRequestId()), prev.ID)
			}
			out = prev
			return nil
		}
		id := ids.New(ids.SupportCase, now)
		out = store.SupportCase{
			ID: id, AccountID: who.AccountID, BundleID: bundleID, CertificateID: certID, Incident: id,
			Kind: store.CaseCustomerRequest, Summary: summary,
			RequestID: sql.NullString{String: req.GetRequestId(), Valid: true},
		}
		return tx.OpenCase(&out, s.Engineers)
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateSupportCaseResponse{Case: caseProto(out)}, nil
}

// maxNote bounds a note's length.
const maxNote = 4000

// UpdateSupportCase implements SupportService.UpdateSupportCase.
func (s *SupportServer) UpdateSupportCase(ctx context.Context, req *lifecyclev1.UpdateSupportCaseRequest) (*lifecyclev1.UpdateSupportCaseResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("case_id", ids.SupportCase, req.GetCaseId()); err != nil {
		return nil, err
	}
	note := strings.TrimSpace(req.GetNote())
	if n := utf8.RuneCountInString(note); n > maxNote {
		return nil, apierr.InvalidArgument("note", "must be at most %d characters, got %d", maxNote, n)
	}
	if err := apierr.CheckNote("note", note); err != nil {
		return nil, err
	}
	status := ""
	if st := req.GetStatus(); st != lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_UNSPECIFIED {
		var ok bool
		if status, ok = caseStatusFromProto(st); !ok {
			return nil, apierr.InvalidArgument("status", "unknown support case status %d", int32(st))
		}
	}
	if note == "" && status == "" && req.GetAssignee() == "" {
		return nil, apierr.InvalidArgument("note", "nothing to update: give a note, a status or an assignee")
	}
	if who.Role != auth.RoleSupport && (status != "" || req.GetAssignee() != "") {
		return nil, apierr.PermissionDenied("only support engineers change a case's status or assignee")
	}
	if a := req.GetAssignee(); a != "" && !slices.Contains(s.Engineers, a) {
		return nil, apierr.InvalidArgument("assignee", "%s is not a support engineer (engineers: %s)", apierr.Quote(a), strings.Join(s.Engineers, ", "))
	}
	// Read through the caller's scope first, so another account's case is NotFound.
	if _, err := s.Store.GetCase(ctx, scope(who), req.GetCaseId()); err != nil {
		return nil, err
	}
	author := "customer"
	if who.Role == auth.RoleSupport {
		author = who.Name
	}
	now := s.Clock.Now()
	var out store.SupportCase
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		c, err := tx.Case(req.GetCaseId())
		if err != nil {
			return err
		}
		if note != "" {
			c.AddNote(store.Note{Author: author, Text: note, Time: db.Micros(now)})
		}
		if status != "" && status != store.CaseResolved && c.Status == store.CaseResolved {
			// Reopening: one incident has one unresolved case at most (incidents.go).
			if other, ok, err := tx.OpenCaseOf(c.Incident); err != nil {
				return err
			} else if ok {
				return apierr.FailedPrecondition("case %s is open for the same incident; add to it instead of reopening %s", other.ID, c.ID)
			}
		}
		if status != "" && status != c.Status {
			c.AddNote(store.Note{Author: author, Text: "status " + c.Status + " → " + status, Time: db.Micros(now)})
			c.Status = status
		}
		if a := req.GetAssignee(); a != "" && a != c.Assignee {
			c.AddNote(store.Note{Author: author, Text: "reassigned from " + c.Assignee + " to " + a, Time: db.Micros(now)})
			c.Assignee = a
		}
		out = c
		if err := tx.SaveCase(&c); err != nil {
			return err
		}
		var did []string
		if note != "" {
			did = append(did, fmt.Sprintf("note added (%d characters)", utf8.RuneCountInString(note)))
		}
		if status != "" {
			did = append(did, "status "+status)
		}
		if a := req.GetAssignee(); a != "" {
			did = append(did, "assignee "+a)
		}
		return tx.Audit(auth.NewAuditEvent(now, c.AccountID, auth.AuditSupportCaseUpdated, who, c.ID, strings.Join(did, "; ")))
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.UpdateSupportCaseResponse{Case: caseProto(out)}, nil
}

func caseProto(c store.SupportCase) *lifecyclev1.SupportCase {
	out := &lifecyclev1.SupportCase{
		CaseId:          c.ID,
		AccountId:       c.AccountID,
		BundleId:        c.BundleID,
		CertificateId:   c.CertificateID,
		ApplicationId:   c.ApplicationID.String,
		Urgent:          c.Urgent,
		Status:          caseStatusToProto[c.Status],
		Assignee:        c.Assignee,
		Summary:         c.Summary,
		CreateTime:      ts(c.CreateTime),
		UpdateTime:      ts(c.UpdateTime),
		RejectionReason: reasonProto(c.Reason),
	}
	switch c.Kind {
	case store.CaseValidationFailed:
		out.Kind = lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_VALIDATION_FAILED
	case store.CaseLateRenewal:
		out.Kind = lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_LATE_RENEWAL
	case store.CaseDeploymentMissing:
		out.Kind = lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_DEPLOYMENT_MISSING
	case store.CaseCustomerRequest:
		out.Kind = lifecyclev1.SupportCaseKind_SUPPORT_CASE_KIND_CUSTOMER_REQUEST
	}
	for _, n := range c.NoteList() {
		out.Notes = append(out.Notes, &lifecyclev1.SupportCaseNote{Author: n.Author, Text: n.Text, Time: ts(n.Time)})
	}
	return out
}
