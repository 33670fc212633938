package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
)

// Limits of CreateApiKey.
const (
	maxKeyName      = 100
	maxKeyBundles   = 100
	maxKeyExpiresIn = 2 * 365 * 24 * time.Hour
)

// AccountServer implements lifecyclev1.AccountServiceServer: an account's own keys and audit log.
// It is served by the lifecycle service, which reads the identity database for keys (as it does to
// authenticate) and holds the audit log of certificate actions; ListAuditEvents merges that with
// the identity database's (key and admin actions).
type AccountServer struct {
	lifecyclev1.UnimplementedAccountServiceServer
	core
	identity *auth.Store
}

// NewAccountServer returns the server over the identity store.
func NewAccountServer(c Config, identity *auth.Store) *AccountServer {
	return &AccountServer{core: core{c}, identity: identity}
}

var roleToProto = map[auth.Role]lifecyclev1.ApiKeyRole{
	auth.RoleOwner:    lifecyclev1.ApiKeyRole_API_KEY_ROLE_OWNER,
	auth.RoleDeployer: lifecyclev1.ApiKeyRole_API_KEY_ROLE_DEPLOYER,
	auth.RoleReader:   lifecyclev1.ApiKeyRole_API_KEY_ROLE_READER,
	auth.RoleSupport:  lifecyclev1.ApiKeyRole_API_KEY_ROLE_SUPPORT,
	auth.RoleService:  lifecyclev1.ApiKeyRole_API_KEY_ROLE_SERVICE,
}

func apiKeyProto(k auth.Key) *lifecyclev1.ApiKey {
	out := &lifecyclev1.ApiKey{KeyId: k.ID, Name: k.Name, Role: roleToProto[k.Role], BundleIds: k.Bundles(), CreateTime: ts(k.CreateTime)}
	if k.ExpireTime.Valid {
		out.ExpireTime = ts(k.ExpireTime.Int64)
	}
	if k.RevokeTime.Valid {
		out.RevokeTime = ts(k.RevokeTime.Int64)
	}
	return out
}

// CreateApiKey implements AccountService.CreateApiKey.
func (s *AccountServer) CreateApiKey(ctx context.Context, req *lifecyclev1.CreateApiKeyRequest) (*lifecyclev1.CreateApiKeyResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := s.keySpec(who.AccountID, req)
	if err != nil {
		return nil, err
	}
	k, secret, err := s.identity.NewKey(ctx, spec, who)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateApiKeyResponse{ApiKey: apiKeyProto(k), Secret: secret}, nil
}

// keySpec checks a CreateApiKey request.
func (s *AccountServer) keySpec(account string, req *lifecyclev1.CreateApiKeyRequest) (auth.KeySpec, error) {
	spec := auth.KeySpec{AccountID: account, Name: req.GetName()}
	switch n := req.GetName(); {
	case n == "":
		return spec, apierr.InvalidArgument("name", "is required")
	case utf8.RuneCountInString(n) > maxKeyName:
		return spec, apierr.InvalidArgument("name", "must be at most %d characters", maxKeyName)
	}
	if err := apierr.CheckText("name", req.GetName()); err != nil {
		return spec, err
	}
	switch req.GetRole() {
	case lifecyclev1.ApiKeyRole_API_KEY_ROLE_OWNER:
		spec.Role = auth.RoleOwner
	case lifecyclev1.ApiKeyRole_API_KEY_ROLE_DEPLOYER:
		spec.Role = auth.RoleDeployer
	case lifecyclev1.ApiKeyRole_API_KEY_ROLE_READER:
		spec.Role = auth.RoleReader
	case lifecyclev1.ApiKeyRole_API_KEY_ROLE_UNSPECIFIED:
		return spec, apierr.InvalidArgument("role", "is required: OWNER, DEPLOYER or READER")
	default:
		return spec, apierr.InvalidArgument("role", "must be OWNER, DEPLOYER or READER (support and service keys are made by the admin command), got %s", req.GetRole())
	}
	bundles := req.GetBundleIds()
	switch {
	case len(bundles) > maxKeyBundles:
		return spec, apierr.InvalidArgument("bundle_ids", "at most %d bundles, got %d", maxKeyBundles, len(bundles))
	case spec.Role == auth.RoleDeployer && len(bundles) == 0:
		return spec, apierr.InvalidArgument("bundle_ids", "a DEPLOYER key must name the bundles it deploys")
	case spec.Role == auth.RoleOwner && len(bundles) > 0:
		return spec, apierr.InvalidArgument("bundle_ids", "an OWNER key acts on the whole account; make a DEPLOYER or READER key for named bundles")
	}
	for i, b := range bundles {
		if err := ids.Check("bundle_ids", ids.Bundle, b); err != nil {
			return spec, err
		}
		if slices.Contains(bundles[:i], b) {
			return spec, apierr.InvalidArgument("bundle_ids", "%s is named twice", b)
		}
	}
	if len(bundles) > 0 {
		spec.Bundles = slices.Clone(bundles)
	}
	if req.ExpireTime != nil {
		if err := req.GetExpireTime().CheckValid(); err != nil {
			return spec, apierr.InvalidArgument("expire_time", "%v", err)
		}
		now, exp := s.Clock.Now(), req.GetExpireTime().AsTime()
		switch {
		case !exp.After(now):
			return spec, apierr.InvalidArgument("expire_time", "must be in the future")
		case exp.Sub(now) > maxKeyExpiresIn:
			return spec, apierr.InvalidArgument("expire_time", "must be at most 2 years ahead")
		}
		spec.Expire = db.Micros(exp)
	}
	return spec, nil
}

// ListApiKeys implements AccountService.ListApiKeys.
func (s *AccountServer) ListApiKeys(ctx context.Context, req *lifecyclev1.ListApiKeysRequest) (*lifecyclev1.ListApiKeysResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	filter := pagetoken.Filter(who.AccountID)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.APIKey, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	keys, err := s.identity.ListKeysPage(ctx, who.AccountID, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListApiKeysResponse{}
	keys, resp.NextPageToken = pagetoken.Cut(keys, size, filter, func(k auth.Key) pagetoken.Position { return pagetoken.Position{Key: k.ID} })
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyProto(k))
	}
	return resp, nil
}

// RevokeApiKey implements AccountService.RevokeApiKey.
func (s *AccountServer) RevokeApiKey(ctx context.Context, req *lifecyclev1.RevokeApiKeyRequest) (*lifecyclev1.RevokeApiKeyResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("key_id", ids.APIKey, req.GetKeyId()); err != nil {
		return nil, err
	}
	k, err := s.identity.RevokeAccountKey(ctx, who.AccountID, req.GetKeyId(), who)
	if errors.Is(err, auth.ErrKeyNotFound) {
		return nil, apierr.NotFound("api key", req.GetKeyId())
	}
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RevokeApiKeyResponse{ApiKey: apiKeyProto(k)}, nil
}

// ListAuditEvents implements AccountService.ListAuditEvents. The log is in two databases (key and
// admin actions in the identity database, certificate actions in the lifecycle database); a page
// reads up to page_size+1 of each after the token's position and merges them by id, which is time
// order (ULIDs).
func (s *AccountServer) ListAuditEvents(ctx context.Context, req *lifecyclev1.ListAuditEventsRequest) (*lifecyclev1.ListAuditEventsResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	f := auth.AuditFilter{AccountID: who.AccountID}
	kindNames := []string{who.AccountID}
	for _, k := range req.GetKinds() {
		name, ok := lifecyclev1.AuditEventKind_name[int32(k)]
		if !ok || k == lifecyclev1.AuditEventKind_AUDIT_EVENT_KIND_UNSPECIFIED {
			return nil, apierr.InvalidArgument("kinds", "unknown kind %d", k)
		}
		kind := auth.AuditKind(name[len("AUDIT_EVENT_KIND_"):])
		if !slices.Contains(f.Kinds, kind) {
			f.Kinds = append(f.Kinds, kind)
		}
		kindNames = append(kindNames, string(kind))
	}
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
		dst   *int64
	}{{"start_time", req.GetStartTime(), &f.Start}, {"end_time", req.GetEndTime(), &f.End}} {
		if t.ts == nil {
			continue
		}
		if err := t.ts.CheckValid(); err != nil {
			return nil, apierr.InvalidArgument(t.field, "%v", err)
		}
		*t.dst = db.Micros(t.ts.AsTime())
	}
	if f.Start != 0 && f.End != 0 && f.End <= f.Start {
		return nil, apierr.InvalidArgument("end_time", "must be after start_time")
	}
	filter := pagetoken.Filter(append(kindNames, "start", strconv.FormatInt(f.Start, 10), "end", strconv.FormatInt(f.End, 10))...)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.AuditEvent, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	keys, err := s.identity.ListAudit(ctx, f, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	certs, err := s.Store.ListAudit(ctx, f, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	all := auth.MergeAudit(size+1, keys, certs)
	resp := &lifecyclev1.ListAuditEventsResponse{}
	all, resp.NextPageToken = pagetoken.Cut(all, size, filter, func(e auth.AuditEvent) pagetoken.Position { return pagetoken.Position{Key: e.ID} })
	for _, e := range all {
		resp.AuditEvents = append(resp.AuditEvents, &lifecyclev1.AuditEvent{
			AuditEventId: e.ID, CreateTime: ts(e.CreateTime),
			Kind:       lifecyclev1.AuditEventKind(lifecyclev1.AuditEventKind_value["AUDIT_EVENT_KIND_"+string(e.Kind)]),
			ActorKeyId: e.ActorKeyID, ActorRole: e.ActorRole, ActorName: e.ActorName, Resource: e.Resource, Detail: e.Detail,
		})
	}
	return resp, nil
}
