package lifecycle

import (
	"context"
	"database/sql"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/services/lifecycle/notify"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Limits of WebhookService.
const (
	maxEndpointsPerAccount = 20
	maxWebhookURL          = 2000
	maxWebhookDescription  = 200
	// secretOverlap is how long the previous secret still signs after RotateWebhookSecret.
	secretOverlap = 24 * time.Hour
)

// WebhookServer implements lifecyclev1.WebhookServiceServer: an account's webhook endpoints and
// their delivery log (services/lifecycle/notify delivers). Every change is audited.
type WebhookServer struct {
	lifecyclev1.UnimplementedWebhookServiceServer
	core
	wake func()
}

// NewWebhookServer returns the server; wake (may be nil) asks the dispatcher to sweep at once
// (after a replay).
func NewWebhookServer(c Config, wake func()) *WebhookServer {
	if wake == nil {
		wake = func() {}
	}
	return &WebhookServer{core: core{c}, wake: wake}
}

func endpointProto(e store.WebhookEndpoint) *lifecyclev1.WebhookEndpoint {
	out := &lifecyclev1.WebhookEndpoint{WebhookEndpointId: e.ID, Url: e.URL, Description: e.Description,
		Disabled: e.Disabled, CreateTime: ts(e.CreateTime), UpdateTime: ts(e.UpdateTime)}
	for _, n := range strings.Fields(e.Kinds) {
		out.EventKinds = append(out.EventKinds, notify.ParseKind(n))
	}
	if e.PreviousSecretExpire.Valid {
		out.PreviousSecretExpireTime = ts(e.PreviousSecretExpire.Int64)
	}
	return out
}

var deliveryStatus = map[string]lifecyclev1.WebhookDeliveryStatus{
	store.NotificationPending:   lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_PENDING,
	store.NotificationSucceeded: lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_SUCCEEDED,
	store.NotificationFailed:    lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_FAILED,
}

func deliveryProto(n store.Notification) *lifecyclev1.WebhookDelivery {
	out := &lifecyclev1.WebhookDelivery{WebhookDeliveryId: n.ID, WebhookEndpointId: n.EndpointID, NotificationId: n.MessageID,
		Kind: notify.ParseKind(n.Kind), Status: deliveryStatus[n.Status], Attempts: int32(n.Attempts),
		LastStatusCode: int32(n.LastStatusCode), LastError: n.LastError, CreateTime: ts(n.CreateTime)}
	if n.LastAttemptTime.Valid {
		out.LastAttemptTime = ts(n.LastAttemptTime.Int64)
	}
	if n.Status == store.NotificationPending && n.NextAttemptTime.Valid {
		out.NextAttemptTime = ts(n.NextAttemptTime.Int64)
	}
	return out
}

// checkWebhookURL accepts an absolute https URL with a host and no user info.
func checkWebhookURL(raw string) error {
	switch {
	case raw == "":
		return apierr.InvalidArgument("url", "is required")
	case len(raw) > maxWebhookURL:
		return apierr.InvalidArgument("url", "must be at most %d characters", maxWebhookURL)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return apierr.InvalidArgument("url", "not a URL: %v", err)
	case u.Scheme != "https":
		return apierr.InvalidArgument("url", "must be https, got %q", u.Scheme)
	case u.Hostname() == "":
		return apierr.InvalidArgument("url", "must name a host")
	case u.User != nil:
		return apierr.InvalidArgument("url", "must not carry user info; authenticate deliveries by their signature")
	}
	return nil
}

// checkKinds returns the stored form of event_kinds (space-separated names).
func checkKinds(kinds []lifecyclev1.NotificationKind) (string, error) {
	names := make([]string, 0, len(kinds))
	for i, k := range kinds {
		if _, ok := lifecyclev1.NotificationKind_name[int32(k)]; !ok || k == lifecyclev1.NotificationKind_NOTIFICATION_KIND_UNSPECIFIED {
			return "", apierr.InvalidArgument("event_kinds", "unknown kind %d", int32(k))
		}
		if slices.Contains(kinds[:i], k) {
			return "", apierr.InvalidArgument("event_kinds", "%s is named twice", k)
		}
		names = append(names, notify.KindName(k))
	}
	return strings.Join(names, " "), nil
}

func checkDescription(d string) error {
	if utf8.RuneCountInString(d) > maxWebhookDescription {
		return apierr.InvalidArgument("description", "must be at most %d characters", maxWebhookDescription)
	}
	return apierr.CheckText("description", d)
}

// CreateWebhookEndpoint implements WebhookService.CreateWebhookEndpoint.
func (s *WebhookServer) CreateWebhookEndpoint(ctx context.Context, req *lifecyclev1.CreateWebhookEndpointRequest) (*lifecyclev1.CreateWebhookEndpointResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkWebhookURL(req.GetUrl()); err != nil {
		return nil, err
	}
	kinds, err := checkKinds(req.GetEventKinds())
	if err != nil {
		return nil, err
	}
	if err := checkDescription(req.GetDescription()); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	id := ids.New(ids.WebhookEndpoint, now)
	secret := notify.NewSecret()
	e := store.WebhookEndpoint{ID: id, AccountID: who.AccountID, URL: req.GetUrl(), Kinds: kinds, Description: req.GetDescription(),
		SecretSealed: s.Keys.Seal([]byte(secret), notify.SecretContext(id)), CreateTime: db.Micros(now), UpdateTime: db.Micros(now)}
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		n, err := tx.CountEndpoints(who.AccountID)
		if err != nil {
			return err
		}
		if n >= maxEndpointsPerAccount {
			return apierr.FailedPrecondition("the account has %d webhook endpoints, the most it may have; delete one first", n)
		}
		if err := tx.InsertEndpoint(e); err != nil {
			return err
		}
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditWebhookChanged, who, id, "created: "+e.URL))
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateWebhookEndpointResponse{WebhookEndpoint: endpointProto(e), Secret: secret}, nil
}

// ListWebhookEndpoints implements WebhookService.ListWebhookEndpoints.
func (s *WebhookServer) ListWebhookEndpoints(ctx context.Context, _ *lifecyclev1.ListWebhookEndpointsRequest) (*lifecyclev1.ListWebhookEndpointsResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	es, err := s.Store.ListEndpoints(ctx, who.AccountID)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListWebhookEndpointsResponse{}
	for _, e := range es {
		resp.WebhookEndpoints = append(resp.WebhookEndpoints, endpointProto(e))
	}
	return resp, nil
}

// GetWebhookEndpoint implements WebhookService.GetWebhookEndpoint.
func (s *WebhookServer) GetWebhookEndpoint(ctx context.Context, req *lifecyclev1.GetWebhookEndpointRequest) (*lifecyclev1.GetWebhookEndpointResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("webhook_endpoint_id", ids.WebhookEndpoint, req.GetWebhookEndpointId()); err != nil {
		return nil, err
	}
	e, err := s.Store.GetEndpoint(ctx, who.AccountID, req.GetWebhookEndpointId())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetWebhookEndpointResponse{WebhookEndpoint: endpointProto(e)}, nil
}

// UpdateWebhookEndpoint implements WebhookService.UpdateWebhookEndpoint.
func (s *WebhookServer) UpdateWebhookEndpoint(ctx context.Context, req *lifecyclev1.UpdateWebhookEndpointRequest) (*lifecyclev1.UpdateWebhookEndpointResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	in := req.GetWebhookEndpoint()
	if in == nil {
		return nil, apierr.InvalidArgument("webhook_endpoint", "is required")
	}
	if err := ids.Check("webhook_endpoint.webhook_endpoint_id", ids.WebhookEndpoint, in.GetWebhookEndpointId()); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, apierr.InvalidArgument("update_mask", "is required: name at least one of url, event_kinds, description, disabled")
	}
	var kinds string
	for i, p := range paths {
		if slices.Contains(paths[:i], p) {
			return nil, apierr.InvalidArgument("update_mask", "%q is named twice", p)
		}
		switch p {
		case "url":
			if err := checkWebhookURL(in.GetUrl()); err != nil {
				return nil, err
			}
		case "event_kinds":
			if kinds, err = checkKinds(in.GetEventKinds()); err != nil {
				return nil, err
			}
		case "description":
			if err := checkDescription(in.GetDescription()); err != nil {
				return nil, err
			}
		case "disabled":
		default:
			return nil, apierr.InvalidArgument("update_mask", "%q cannot be updated: url, event_kinds, description or disabled", p)
		}
	}
	now := s.Clock.Now()
	var e store.WebhookEndpoint
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		if e, err = tx.Endpoint(who.AccountID, in.GetWebhookEndpointId()); err != nil {
			return err
		}
		for _, p := range paths {
			switch p {
			case "url":
				e.URL = in.GetUrl()
			case "event_kinds":
				e.Kinds = kinds
			case "description":
				e.Description = in.GetDescription()
			case "disabled":
				e.Disabled = in.GetDisabled()
			}
		}
		if err := tx.SaveEndpoint(&e); err != nil {
			return err
		}
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditWebhookChanged, who, e.ID, "updated: "+strings.Join(paths, ", ")))
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.UpdateWebhookEndpointResponse{WebhookEndpoint: endpointProto(e)}, nil
}

// DeleteWebhookEndpoint implements WebhookService.DeleteWebhookEndpoint.
func (s *WebhookServer) DeleteWebhookEndpoint(ctx context.Context, req *lifecyclev1.DeleteWebhookEndpointRequest) (*lifecyclev1.DeleteWebhookEndpointResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetWebhookEndpointId()
	if err := ids.Check("webhook_endpoint_id", ids.WebhookEndpoint, id); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		e, err := tx.Endpoint(who.AccountID, id)
		if err != nil {
			return err
		}
		if err := tx.DeleteEndpoint(id); err != nil {
			return err
		}
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditWebhookChanged, who, id, "deleted: "+e.URL))
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.DeleteWebhookEndpointResponse{}, nil
}

// RotateWebhookSecret implements WebhookService.RotateWebhookSecret: the current secret becomes
// the previous one, which keeps signing for secretOverlap (replacing any older previous secret).
func (s *WebhookServer) RotateWebhookSecret(ctx context.Context, req *lifecyclev1.RotateWebhookSecretRequest) (*lifecyclev1.RotateWebhookSecretResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetWebhookEndpointId()
	if err := ids.Check("webhook_endpoint_id", ids.WebhookEndpoint, id); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	secret := notify.NewSecret()
	var e store.WebhookEndpoint
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		if e, err = tx.Endpoint(who.AccountID, id); err != nil {
			return err
		}
		e.PreviousSecretSealed = e.SecretSealed
		e.PreviousSecretExpire = sql.NullInt64{Int64: db.Micros(now.Add(secretOverlap)), Valid: true}
		e.SecretSealed = s.Keys.Seal([]byte(secret), notify.SecretContext(id))
		if err := tx.SaveEndpoint(&e); err != nil {
			return err
		}
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditWebhookChanged, who, id, "secret rotated"))
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RotateWebhookSecretResponse{WebhookEndpoint: endpointProto(e), Secret: secret}, nil
}

// ListWebhookDeliveries implements WebhookService.ListWebhookDeliveries.
func (s *WebhookServer) ListWebhookDeliveries(ctx context.Context, req *lifecyclev1.ListWebhookDeliveriesRequest) (*lifecyclev1.ListWebhookDeliveriesResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f := store.NotificationFilter{AccountID: who.AccountID, Channel: store.ChannelWebhook, EndpointID: req.GetWebhookEndpointId()}
	if f.EndpointID != "" {
		if err := ids.Check("webhook_endpoint_id", ids.WebhookEndpoint, f.EndpointID); err != nil {
			return nil, err
		}
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	filter := pagetoken.Filter(who.AccountID, f.EndpointID)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.WebhookDelivery, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	ns, err := s.Store.ListNotifications(ctx, f, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListWebhookDeliveriesResponse{}
	ns, resp.NextPageToken = pagetoken.Cut(ns, size, filter, func(n store.Notification) pagetoken.Position { return pagetoken.Position{Key: n.ID} })
	for _, n := range ns {
		resp.WebhookDeliveries = append(resp.WebhookDeliveries, deliveryProto(n))
	}
	return resp, nil
}

// ReplayWebhookDelivery implements WebhookService.ReplayWebhookDelivery: a new delivery of the
// same payload and webhook-id to the same endpoint, due now, with a fresh 3-day retry budget.
func (s *WebhookServer) ReplayWebhookDelivery(ctx context.Context, req *lifecyclev1.ReplayWebhookDeliveryRequest) (*lifecyclev1.ReplayWebhookDeliveryResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetWebhookDeliveryId()
	if err := ids.Check("webhook_delivery_id", ids.WebhookDelivery, id); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	var n store.Notification
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		old, err := tx.Notification(who.AccountID, id)
		if err != nil {
			return err
		}
		e, err := tx.Endpoint(who.AccountID, old.EndpointID)
		if err != nil {
			return apierr.FailedPrecondition("the endpoint %s of delivery %s no longer exists", old.EndpointID, id)
		}
		if e.Disabled {
			return apierr.FailedPrecondition("the endpoint %s is disabled; enable it first", e.ID)
		}
		n = store.Notification{ID: ids.New(ids.WebhookDelivery, now), AccountID: old.AccountID, EventID: old.EventID,
			Kind: old.Kind, Channel: old.Channel, Lane: old.Lane, EndpointID: old.EndpointID, MessageID: old.MessageID,
			Payload: old.Payload, Status: store.NotificationPending, CreateTime: db.Micros(now),
			GiveUpTime: db.Micros(now.Add(72 * time.Hour)), NextAttemptTime: sql.NullInt64{Int64: db.Micros(now), Valid: true}}
		if err := tx.InsertNotifications([]store.Notification{n}); err != nil {
			return err
		}
		return tx.Audit(auth.NewAuditEvent(now, who.AccountID, auth.AuditWebhookChanged, who, e.ID, "replayed "+id+" as "+n.ID))
	})
	if err != nil {
		return nil, err
	}
	s.wake()
	return &lifecyclev1.ReplayWebhookDeliveryResponse{WebhookDelivery: deliveryProto(n)}, nil
}
