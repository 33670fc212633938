package lifecycle

import (
	"context"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
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
	if !who.Sees(v.BundleID) {
		return nil, apierr.NotFound("certificate", req.GetCertificateId())
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
	f := store.CertificateFilter{AccountID: who.AccountID, Only: who.Bundles}
	if req.GetBundleId() != "" {
		if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
			return nil, err
		}
		f.BundleID = req.GetBundleId()
	}
	if f.State, err = stateFilter(req.GetState()); err != nil {
		return nil, err
	}
	lf, err := checkListFilters(req.GetDomain(), req.GetHostingStatus(), req.GetExpireBefore())
	if err != nil {
		return nil, err
	}
	f.Domain, f.HostingStatus, f.ExpireBefore = lf.domain, lf.hostingStatus, lf.expireBefore
	filter := pagetoken.Filter(append([]string{f.AccountID, f.BundleID, string(f.State)}, lf.token()...)...)
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
	if who.Bundles != nil {
		c, err := s.Store.GetCertificate(ctx, who.AccountID, req.GetCertificateId())
		if err != nil {
			return nil, err
		}
		if !who.Sees(c.BundleID) {
			return nil, apierr.NotFound("certificate", req.GetCertificateId())
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

// listFilters are the filters ListBundles and ListCertificates share, checked.
type listFilters struct {
	domain        *store.DomainFilter
	hostingStatus string
	expireBefore  int64
}

// token is the filters as page-token filter values: a page token is valid only with the filters
// of its first page.
func (f listFilters) token() []string {
	d := ""
	if f.domain != nil {
		d = f.domain.Name
		if f.domain.Under {
			d = "." + d
		}
	}
	return []string{d, f.hostingStatus, strconv.FormatInt(f.expireBefore, 10)}
}

var hostingStatusStored = map[lifecyclev1.HostingStatus]string{
	lifecyclev1.HostingStatus_HOSTING_STATUS_NOT_HOSTED: store.HostingNotHosted,
	lifecyclev1.HostingStatus_HOSTING_STATUS_WAITING:    store.HostingWaiting,
	lifecyclev1.HostingStatus_HOSTING_STATUS_ACTIVE:     store.HostingActive,
	lifecyclev1.HostingStatus_HOSTING_STATUS_ENDING:     store.HostingEnding,
	lifecyclev1.HostingStatus_HOSTING_STATUS_ENDED:      store.HostingEnded,
	lifecyclev1.HostingStatus_HOSTING_STATUS_LAPSED:     store.HostingLapsed,
}

// checkListFilters checks the domain, hosting_status and expire_before fields of a list request.
func checkListFilters(domain string, hosting lifecyclev1.HostingStatus, expireBefore *timestamppb.Timestamp) (listFilters, error) {
	var f listFilters
	if domain != "" {
		under := strings.HasPrefix(domain, ".")
		name, wildcard, err := normalizeDomain("domain", strings.TrimPrefix(domain, "."))
		if err != nil {
			return listFilters{}, err
		}
		if under && wildcard {
			return listFilters{}, apierr.InvalidArgument("domain", "%s: give either a name under a domain (\".example.com\") or a wildcard name (\"*.example.com\"), not both", apierr.Quote(domain))
		}
		f.domain = &store.DomainFilter{Name: name, Under: under}
	}
	if hosting != lifecyclev1.HostingStatus_HOSTING_STATUS_UNSPECIFIED {
		st, ok := hostingStatusStored[hosting]
		if !ok {
			return listFilters{}, apierr.InvalidArgument("hosting_status", "unknown hosting status %d", int32(hosting))
		}
		f.hostingStatus = st
	}
	if expireBefore != nil {
		if err := expireBefore.CheckValid(); err != nil {
			return listFilters{}, apierr.InvalidArgument("expire_before", "%v", err)
		}
		f.expireBefore = db.Micros(expireBefore.AsTime())
		if f.expireBefore == 0 {
			f.expireBefore = 1 // the epoch itself: nothing ends before it, and 0 means "no filter"
		}
	}
	return f, nil
}

// stateFilter checks a state filter field.
func stateFilter(p lifecyclev1.CertificateState) (state.State, error) {
	if p == lifecyclev1.CertificateState_CERTIFICATE_STATE_UNSPECIFIED {
		return "", nil
	}
	st, err := state.FromProto(p)
	if err != nil {
		return "", apierr.InvalidArgument("state", "%v", err)
	}
	return st, nil
}
