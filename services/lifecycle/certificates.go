package lifecycle

import (
	"context"
	"strconv"
	"strings"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// GetCertificate implements LifecycleService.GetCertificate.
func (s *Server) GetCertificate(ctx context.Context, req *lifecyclev1.GetCertificateRequest) (*lifecyclev1.GetCertificateResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	v, err := s.Store.CertificateView(ctx, who.AccountID, req.GetCertificateId())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetCertificateResponse{Certificate: certificateProto(v)}, nil
}

// ListCertificates implements LifecycleService.ListCertificates.
func (s *Server) ListCertificates(ctx context.Context, req *lifecyclev1.ListCertificatesRequest) (*lifecyclev1.ListCertificatesResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	f := store.CertificateFilter{AccountID: who.AccountID}
	if req.GetBundleId() != "" {
		if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
			return nil, err
		}
		f.BundleID = req.GetBundleId()
	}
	if req.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED {
		st, err := state.FromProto(req.GetState())
		if err != nil {
			return nil, apierr.InvalidArgument("state", "%v", err)
		}
		f.State = st
	}
	filter := pagetoken.Filter(f.AccountID, f.BundleID, string(f.State))
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	after := store.CertificatePosition{BundleID: pos.Key, Sequence: int(pos.Seq)}
	if pos.Key != "" && !ids.Valid(ids.Bundle, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	cs, err := s.Store.ListCertificates(ctx, f, after, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListCertificatesResponse{}
	cs, resp.NextPageToken = pagetoken.Cut(cs, size, filter, func(c store.Certificate) pagetoken.Position {
		return pagetoken.Position{Key: c.BundleID, Seq: int64(c.Sequence)}
	})
	views, err := s.Store.Views(ctx, cs)
	if err != nil {
		return nil, err
	}
	for _, v := range views {
		resp.Certificates = append(resp.Certificates, certificateProto(v))
	}
	return resp, nil
}

// historyPageSize is GetCertificateLifecycle's default page: enough for a whole three-year hosted
// instance's history in one call.
const historyPageSize = 100

// GetCertificateLifecycle implements LifecycleService.GetCertificateLifecycle.
func (s *Server) GetCertificateLifecycle(ctx context.Context, req *lifecyclev1.GetCertificateLifecycleRequest) (*lifecyclev1.GetCertificateLifecycleResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, req.GetCertificateId()); err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), historyPageSize)
	if err != nil {
		return nil, err
	}
	filter := pagetoken.Filter(who.AccountID, req.GetCertificateId())
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	var after int64
	if pos.Key != "" {
		if after, err = strconv.ParseInt(pos.Key, 10, 64); err != nil || after < 0 {
			return nil, apierr.InvalidArgument("page_token", "malformed")
		}
	}
	es, err := s.Store.ListEvents(ctx, who.AccountID, req.GetCertificateId(), after, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.GetCertificateLifecycleResponse{}
	es, resp.NextPageToken = pagetoken.Cut(es, size, filter, func(e store.Event) pagetoken.Position {
		return pagetoken.Position{Key: strconv.FormatInt(e.ID, 10)}
	})
	for _, e := range es {
		resp.Events = append(resp.Events, eventProto(e))
	}
	return resp, nil
}

func eventProto(e store.Event) *lifecyclev1.LifecycleEvent {
	return &lifecyclev1.LifecycleEvent{
		EventId:       strconv.FormatInt(e.ID, 10),
		CertificateId: e.CertificateID,
		BundleId:      e.BundleID,
		FromState:     state.ToProto(e.From),
		ToState:       state.ToProto(e.To),
		Actor:         state.ActorProto(e.Actor),
		Reason:        e.Reason,
		Time:          ts(e.Time),
		Type:          lifecyclev1.EventType(lifecyclev1.EventType_value["EVENT_TYPE_"+strings.ToUpper(e.Type)]),
		SupportCaseId: e.SupportCaseID,
	}
}
