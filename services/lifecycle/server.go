// Package lifecycle is the lifecycle service: bundles and their certificate instances, the
// instance state machine (package state), applications to the CA, issued certificates, support
// cases, and the renewal ticker that keeps a hosted bundle's certificate valid for the whole
// subscription.
//
// Where to look:
//   - a paid order becomes instances: CreateBundle (bundles.go);
//   - a customer applies: SubmitApplication (applications.go);
//   - the renewal decision: DecideSuccessor (renewal.go), applied by the ticker (ticker.go);
//   - who may change what: state/state.go;
//   - support engineers: support.go; the event stream: events.go.
package lifecycle

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

var (
	owner        = auth.Allow(auth.RoleOwner)
	ownerSupport = auth.Allow(auth.RoleOwner, auth.RoleSupport)
	service      = auth.Allow(auth.RoleService)
	read         = auth.AllowScoped(auth.RoleOwner, auth.RoleDeployer, auth.RoleReader)
	export       = auth.AllowScoped(auth.RoleOwner, auth.RoleDeployer)
	readCases    = auth.Allow(auth.RoleOwner, auth.RoleReader, auth.RoleSupport)
	support      = auth.Allow(auth.RoleSupport)
	// deploy is for the deploy agent's key: a deployer (least rights: read, export and report,
	// optionally limited to some bundles) or the owner.
	deploy = auth.AllowScoped(auth.RoleOwner, auth.RoleDeployer)
	// readAccount is for what belongs to the whole account (webhook endpoints and deliveries): a
	// key limited to bundles must not see where every bundle's events go.
	readAccount = auth.Allow(auth.RoleOwner, auth.RoleReader)
)

// Policy is the authorization table of the lifecycle service (docs/security.md): who may call
// each method. CreateBundle and CancelBundle are for the order service's own credential only (the
// service role); support engineers may retry a failed application and work on support cases
// across accounts; reads are for every customer role (deployer and limited reader keys see only
// their bundles), exports for owners and deployers, everything else for owners, each on its own
// account.
//
// A service key is a bearer secret, so on its own it proves only that the caller holds a copy.
// What proves the caller is the order service is mutual TLS: run with -tls-client-ca, the
// service binds the service role to the client certificate naming -order-service-identity
// (auth.Interceptor.WithServiceIdentity), and a service key over any other connection is
// PermissionDenied. Without mutual TLS the key alone is accepted, as on loopback by default.
var Policy = auth.Policy{
	lifecyclev1.LifecycleService_CreateBundle_FullMethodName:              service,
	lifecyclev1.LifecycleService_BatchCreateBundles_FullMethodName:        service,
	lifecyclev1.LifecycleService_CancelBundle_FullMethodName:              service,
	lifecyclev1.LifecycleService_GetBundle_FullMethodName:                 read,
	lifecyclev1.LifecycleService_ListBundles_FullMethodName:               read,
	lifecyclev1.LifecycleService_UpdateBundle_FullMethodName:              owner,
	lifecyclev1.LifecycleService_GetCertificate_FullMethodName:            read,
	lifecyclev1.LifecycleService_ListCertificates_FullMethodName:          read,
	lifecyclev1.LifecycleService_GetCertificateLifecycle_FullMethodName:   read,
	lifecyclev1.LifecycleService_SubmitApplication_FullMethodName:         owner,
	lifecyclev1.LifecycleService_RetryApplication_FullMethodName:          ownerSupport,
	lifecyclev1.LifecycleService_ActivateCertificate_FullMethodName:       owner,
	lifecyclev1.LifecycleService_ExportCertificate_FullMethodName:         export,
	lifecyclev1.LifecycleService_WatchEvents_FullMethodName:               read,
	lifecyclev1.LifecycleService_EnableHosting_FullMethodName:             owner,
	lifecyclev1.LifecycleService_ReissueCertificate_FullMethodName:        owner,
	lifecyclev1.LifecycleService_ImportCertificate_FullMethodName:         owner,
	lifecyclev1.LifecycleService_RevokeCertificate_FullMethodName:         owner,
	lifecyclev1.LifecycleService_RenewCertificate_FullMethodName:          owner,
	lifecyclev1.LifecycleService_UpdateApplicationTemplate_FullMethodName: owner,
	lifecyclev1.LifecycleService_RecordDeployment_FullMethodName:          deploy,
	lifecyclev1.SupportService_ListSupportCases_FullMethodName:            readCases,
	lifecyclev1.SupportService_GetSupportCase_FullMethodName:              readCases,
	lifecyclev1.SupportService_UpdateSupportCase_FullMethodName:           ownerSupport,
	lifecyclev1.SupportService_CreateSupportCase_FullMethodName:           owner,
	lifecyclev1.SupportService_GetAccountEngineer_FullMethodName:          readCases,
	lifecyclev1.SupportService_SetAccountEngineer_FullMethodName:          support,
	lifecyclev1.AccountService_CreateApiKey_FullMethodName:                owner,
	lifecyclev1.AccountService_ListApiKeys_FullMethodName:                 owner,
	lifecyclev1.AccountService_RevokeApiKey_FullMethodName:                owner,
	lifecyclev1.AccountService_ListAuditEvents_FullMethodName:             owner,
	lifecyclev1.OperationsService_CreateReissueOperation_FullMethodName:   support,
	lifecyclev1.OperationsService_GetOperation_FullMethodName:             support,
	lifecyclev1.OperationsService_ListOperations_FullMethodName:           support,
	lifecyclev1.OperationsService_PauseOperation_FullMethodName:           support,
	lifecyclev1.OperationsService_ResumeOperation_FullMethodName:          support,
	lifecyclev1.OperationsService_CancelOperation_FullMethodName:          support,
	lifecyclev1.WebhookService_CreateWebhookEndpoint_FullMethodName:       owner,
	lifecyclev1.WebhookService_ListWebhookEndpoints_FullMethodName:        readAccount,
	lifecyclev1.WebhookService_GetWebhookEndpoint_FullMethodName:          readAccount,
	lifecyclev1.WebhookService_UpdateWebhookEndpoint_FullMethodName:       owner,
	lifecyclev1.WebhookService_DeleteWebhookEndpoint_FullMethodName:       owner,
	lifecyclev1.WebhookService_RotateWebhookSecret_FullMethodName:         owner,
	lifecyclev1.WebhookService_ListWebhookDeliveries_FullMethodName:       readAccount,
	lifecyclev1.WebhookService_ReplayWebhookDelivery_FullMethodName:       owner,
	lifecyclev1.AccountService_GetAccountSettings_FullMethodName:          owner,
	lifecyclev1.AccountService_UpdateAccountSettings_FullMethodName:       owner,
}

// Config wires the lifecycle service: what both the API and the ticker use.
type Config struct {
	Store *store.Store
	Clock clockwork.Clock
	Log   *slog.Logger
	// CAs are the configured certificate authorities and which one serves each product. An
	// application records the name of its CA.
	CAs *ca.Registry
	// Keys encrypts private keys at rest.
	Keys *secrets.Box
	// Engineers are the configured support engineers: each account gets one of them (the
	// least-loaded, engineers.go) and every case of the account is assigned to it.
	Engineers []string
	// Metrics counts renewals, CA calls and sweeps; nil counts nothing.
	Metrics *Metrics
	// CARateLimits are the CAs' own limits on new certificates per second (by CA name; absent or 0:
	// none), which a mass re-issue never exceeds (caconfig's max_issuance_rate).
	CARateLimits map[string]float64
}

// core is the part of the service the API and the ticker share.
type core struct{ Config }

// caOf returns the CA an application went to.
func (c *core) caOf(a store.Application) (ca.Client, error) {
	client, ok := c.CAs.Client(a.CAName)
	if !ok {
		return nil, fmt.Errorf("application %s went to CA %q, which is no longer configured (configured: %v)", a.ID, a.CAName, c.CAs.Names())
	}
	return client, nil
}

// Server implements lifecyclev1.LifecycleServiceServer.
type Server struct {
	lifecyclev1.UnimplementedLifecycleServiceServer
	core
	events     *EventHub
	wakeTicker func()
}

// NewServer returns the server. events feeds WatchEvents streams (the store calls its Notify on
// every commit with events; it reads c.Store); wakeTicker (may be nil) asks the ticker to poll a
// new application at once.
func NewServer(c Config, events *EventHub, wakeTicker func()) *Server {
	if wakeTicker == nil {
		wakeTicker = func() {}
	}
	events.attach(c.Store, c.Log)
	return &Server{core: core{c}, events: events, wakeTicker: wakeTicker}
}

func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.Caller(ctx)
	if !ok {
		return auth.Principal{}, apierr.Unauthenticated("no verified caller")
	}
	return p, nil
}

// callersCertificate is the caller and the instance certificateID of the caller's account: the
// first step of every customer call on one instance (InvalidArgument for a malformed id, NotFound
// for another account's).
func (s *Server) callersCertificate(ctx context.Context, certificateID string) (auth.Principal, store.Certificate, error) {
	who, err := caller(ctx)
	if err != nil {
		return auth.Principal{}, store.Certificate{}, err
	}
	if err := ids.Check("certificate_id", ids.Certificate, certificateID); err != nil {
		return auth.Principal{}, store.Certificate{}, err
	}
	c, err := s.Store.CertificateOf(ctx, who.AccountID, certificateID)
	if err == nil && !who.Sees(c.BundleID) {
		return auth.Principal{}, store.Certificate{}, apierr.NotFound("certificate", certificateID)
	}
	return who, c, err
}

// instructionsFor are the DNS records authority needs for the names of bundle bindingID, when it
// can tell them before an application (ca.Instructor), with their JSON for an application row.
func instructionsFor(authority ca.Client, bindingID string, domains []string) ([]ca.DNSRecord, string, error) {
	var instr []ca.DNSRecord
	if in, ok := authority.(ca.Instructor); ok {
		instr = in.Instructions(bindingID, domains)
	}
	raw, err := json.Marshal(instr)
	return instr, string(raw), err
}

func ts(micros int64) *timestamppb.Timestamp { return timestamppb.New(db.FromMicros(micros)) }

func bundleProto(b store.Bundle, certs []store.CertificateView) *lifecyclev1.Bundle {
	out := &lifecyclev1.Bundle{
		BundleId:  b.ID,
		OrderId:   b.OrderID,
		AccountId: b.AccountID,
		Product: &lifecyclev1.ProductSnapshot{
			ProductId:      b.ProductID,
			ValidationType: lifecyclev1.ValidationType(lifecyclev1.ValidationType_value["VALIDATION_TYPE_"+b.ValidationType]),
			DomainType:     lifecyclev1.DomainType(lifecyclev1.DomainType_value["DOMAIN_TYPE_"+b.DomainType]),
		},
		DomainCount:       int32(b.DomainCount),
		Hosting:           b.Hosting,
		SubscriptionYears: int32(b.SubscriptionYears),
		CreateTime:        ts(b.CreateTime),
		HostingStatus:     hostingStatusProto(b),
	}
	if b.T0.Valid {
		out.FirstIssueTime = ts(b.T0.Int64)
	}
	if b.HostingEndTime.Valid {
		out.HostingEndTime = ts(b.HostingEndTime.Int64)
	}
	if b.RenewBeforeSeconds.Valid {
		out.RenewBefore = durationpb.New(time.Duration(b.RenewBeforeSeconds.Int64) * time.Second)
	}
	out.MaintenanceWindow = windowProtoOf(b.MaintenanceWindow)
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certificateProto(c))
		if c.ID == b.CurrentCertificateID.String && c.Issuance != nil && c.Issuance.ID == b.CurrentIssuanceID.String {
			out.CurrentCertificateId, out.CurrentIssuance = c.ID, issuanceProto(*c.Issuance)
		}
	}
	return out
}

func hostingStatusProto(b store.Bundle) lifecyclev1.HostingStatus {
	if !b.Hosting {
		return lifecyclev1.HostingStatus_HOSTING_STATUS_NOT_HOSTED
	}
	switch b.HostingStatus {
	case store.HostingActive:
		return lifecyclev1.HostingStatus_HOSTING_STATUS_ACTIVE
	case store.HostingEnding:
		return lifecyclev1.HostingStatus_HOSTING_STATUS_ENDING
	case store.HostingEnded:
		return lifecyclev1.HostingStatus_HOSTING_STATUS_ENDED
	case store.HostingLapsed:
		return lifecyclev1.HostingStatus_HOSTING_STATUS_LAPSED
	}
	return lifecyclev1.HostingStatus_HOSTING_STATUS_WAITING
}

func certificateProto(v store.CertificateView) *lifecyclev1.Certificate {
	c := v.Certificate
	out := &lifecyclev1.Certificate{
		CertificateId: c.ID,
		BundleId:      c.BundleID,
		Sequence:      int32(c.Sequence),
		State:         state.ToProto(c.State),
		CreateTime:    ts(c.CreateTime),
		UpdateTime:    ts(c.UpdateTime),
	}
	if c.CoverageStart.Valid {
		out.CoverageStartTime = ts(c.CoverageStart.Int64)
	}
	if c.CoverageEnd.Valid {
		out.CoverageEndTime = ts(c.CoverageEnd.Int64)
	}
	if c.RenewAt.Valid {
		out.RenewTime = ts(c.RenewAt.Int64)
	}
	if c.RetryAt.Valid {
		out.RetryTime = ts(c.RetryAt.Int64)
	}
	out.RenewalRetries = int32(c.Retries)
	if c.State != state.Cancelled {
		out.DaysPaid = int32(Year / oneDay)
	}
	if c.CoverageStart.Valid && c.CoverageEnd.Valid {
		out.DaysCovered = int32(Covered(v.Validity, c.CoverageStart.Int64, c.CoverageEnd.Int64) / oneDay)
	}
	if r := v.Renewal; r != nil {
		switch r.Status {
		case store.AppSubmitting, store.AppPending:
			out.RenewalStatus = lifecyclev1.RenewalStatus_RENEWAL_STATUS_PENDING
		case store.AppRejected:
			out.RenewalStatus = lifecyclev1.RenewalStatus_RENEWAL_STATUS_FAILED
			out.RenewalSupportCaseId = v.OpenCaseID
		case store.AppIssued:
			out.RenewalStatus = lifecyclev1.RenewalStatus_RENEWAL_STATUS_RENEWED
		}
	}
	if v.Issuance != nil {
		out.CurrentIssuance = issuanceProto(*v.Issuance)
	}
	if v.Application != nil {
		out.CurrentApplication = applicationProto(*v.Application)
	}
	return out
}

func issuanceProto(i store.Issuance) *lifecyclev1.Issuance {
	out := &lifecyclev1.Issuance{
		IssuanceId:          i.ID,
		ApplicationId:       i.ApplicationID,
		SerialNumber:        i.Serial,
		NotBefore:           ts(i.NotBefore),
		NotAfter:            ts(i.NotAfter),
		CertificateChainPem: i.ChainPEM,
		IssueTime:           ts(i.CreateTime),
	}
	if i.RevokeTime.Valid {
		out.RevokeTime = ts(i.RevokeTime.Int64)
		out.RevocationReason = lifecyclev1.RevocationReason(i.RevokeReason.Int64)
	}
	return out
}

var appStatusProto = map[string]lifecyclev1.ApplicationStatus{
	store.AppSubmitting: lifecyclev1.ApplicationStatus_APPLICATION_STATUS_SUBMITTING,
	store.AppPending:    lifecyclev1.ApplicationStatus_APPLICATION_STATUS_PENDING,
	store.AppIssued:     lifecyclev1.ApplicationStatus_APPLICATION_STATUS_ISSUED,
	store.AppRejected:   lifecyclev1.ApplicationStatus_APPLICATION_STATUS_REJECTED,
	store.AppCancelled:  lifecyclev1.ApplicationStatus_APPLICATION_STATUS_CANCELLED,
	store.AppTemplate:   lifecyclev1.ApplicationStatus_APPLICATION_STATUS_UNSPECIFIED, // never sent to a CA
}

var keyAlgorithmProto = map[string]lifecyclev1.KeyAlgorithm{
	KeyECDSAP256: lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P256,
	KeyECDSAP384: lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_ECDSA_P384,
	KeyRSA2048:   lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_2048,
	KeyRSA3072:   lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_3072,
	KeyRSA4096:   lifecyclev1.KeyAlgorithm_KEY_ALGORITHM_RSA_4096,
}

func reasonProto(r string) lifecyclev1.RejectionReason {
	return lifecyclev1.RejectionReason(lifecyclev1.RejectionReason_value["REJECTION_REASON_"+r])
}

func applicationProto(a store.Application) *lifecyclev1.Application {
	out := &lifecyclev1.Application{
		ApplicationId:    a.ID,
		CertificateId:    a.CertificateID,
		Status:           appStatusProto[a.Status],
		ValidationMethod: lifecyclev1.ValidationMethod(lifecyclev1.ValidationMethod_value["VALIDATION_METHOD_"+a.ValidationMethod]),
		KeyAlgorithm:     keyAlgorithmProto[a.KeyAlgorithm],
		CustomerKey:      a.CSRPEM.Valid,
		Automatic:        a.Automatic,
		RejectionMessage: a.RejectMessage.String,
		SubmitTime:       ts(a.CreateTime),
		UpdateTime:       ts(a.UpdateTime),
	}
	if a.RejectReason.Valid {
		out.RejectionReason = reasonProto(a.RejectReason.String)
	}
	if info, err := infoFromRow(a); err == nil {
		out.Domains = info.Domains
		out.Contact = &lifecyclev1.Contact{Name: info.Contact.Name, Email: info.Contact.Email, Phone: info.Contact.Phone}
		if o := info.Organization; o != nil {
			out.Organization = &lifecyclev1.Organization{LegalName: o.LegalName, Country: o.Country,
				StateOrProvince: o.StateOrProvince, Locality: o.Locality, RegistrationNumber: o.RegistrationNumber}
		}
	}
	var instr []ca.DNSRecord
	if err := json.Unmarshal([]byte(a.Instructions), &instr); err == nil {
		out.Instructions = dnsRecordsProto(instr)
	}
	return out
}

func dnsRecordsProto(rs []ca.DNSRecord) []*lifecyclev1.DnsRecord {
	out := make([]*lifecyclev1.DnsRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, &lifecyclev1.DnsRecord{Name: r.Name, Type: r.Type, Value: r.Value})
	}
	return out
}
