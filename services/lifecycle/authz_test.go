package lifecycle_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/order"
)

// authzTarget is the resources one call of the matrix names: an account's, or another account's.
type authzTarget struct {
	account, bundle, cert, order, caseID string
	// issuance is cert's certificate (RecordDeployment reports it).
	issuance string
	// Spares are what calls that change things (cancel, revoke) act on, so that the main
	// resources stay as they are for the rest of the matrix.
	spareBundle, spareCert, spareOrder, spareKey string
	// A webhook endpoint, a spare one (deleted) and a delivery to the first.
	endpoint, spareEndpoint, delivery string
}

// authzCall calls one RPC on target through conn: the lifecycle service's connection for its
// services, the order service's for OrderService.
type authzCall func(ctx context.Context, lc, oc *grpc.ClientConn, t authzTarget) error

// authzCalls has one valid request per RPC of both services. A method missing here fails the
// test, so a new RPC gets its row in the matrix.
var authzCalls = map[string]authzCall{
	lifecyclev1.LifecycleService_CreateBundle_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		now := time.Now()
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).CreateBundle(ctx, &lifecyclev1.CreateBundleRequest{
			BundleId: ids.New(ids.Bundle, now), AccountId: t.account, OrderId: ids.New(ids.Order, now),
			Product:     &lifecyclev1.ProductSnapshot{ProductId: "dv-single", ValidationType: dv, DomainType: single},
			DomainCount: 1, SubscriptionYears: 1,
		})
		return err
	},
	lifecyclev1.LifecycleService_BatchCreateBundles_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		now := time.Now()
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).BatchCreateBundles(ctx, &lifecyclev1.BatchCreateBundlesRequest{
			Requests: []*lifecyclev1.CreateBundleRequest{{
				BundleId: ids.New(ids.Bundle, now), AccountId: t.account, OrderId: ids.New(ids.Order, now),
				Product:     &lifecyclev1.ProductSnapshot{ProductId: "dv-single", ValidationType: dv, DomainType: single},
				DomainCount: 1, SubscriptionYears: 1,
			}},
		})
		return err
	},
	lifecyclev1.LifecycleService_CancelBundle_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).CancelBundle(ctx, &lifecyclev1.CancelBundleRequest{BundleId: t.spareBundle, AccountId: t.account})
		return err
	},
	lifecyclev1.LifecycleService_GetBundle_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: t.bundle})
		return err
	},
	lifecyclev1.LifecycleService_ListBundles_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ListBundles(ctx, &lifecyclev1.ListBundlesRequest{})
		return err
	},
	lifecyclev1.LifecycleService_UpdateBundle_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).UpdateBundle(ctx, &lifecyclev1.UpdateBundleRequest{BundleId: t.bundle})
		return err
	},
	lifecyclev1.LifecycleService_GetCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).GetCertificate(ctx, &lifecyclev1.GetCertificateRequest{CertificateId: t.cert})
		return err
	},
	lifecyclev1.LifecycleService_ListCertificates_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{})
		return err
	},
	lifecyclev1.LifecycleService_GetCertificateLifecycle_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: t.cert})
		return err
	},
	lifecyclev1.LifecycleService_SubmitApplication_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).SubmitApplication(ctx, application(t.spareCert, "authz.example.com"))
		return err
	},
	lifecyclev1.LifecycleService_RetryApplication_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).RetryApplication(ctx, &lifecyclev1.RetryApplicationRequest{CertificateId: t.cert})
		return err
	},
	lifecyclev1.LifecycleService_ActivateCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ActivateCertificate(ctx, &lifecyclev1.ActivateCertificateRequest{CertificateId: t.cert})
		return err
	},
	lifecyclev1.LifecycleService_ExportCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ExportCertificate(ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: t.cert})
		return err
	},
	lifecyclev1.LifecycleService_RecordDeployment_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		issuance := t.issuance
		if issuance == "" { // a certificate not issued: a well-formed id the bundle check refuses first
			issuance = ids.New(ids.Issuance, time.Now())
		}
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).RecordDeployment(ctx, &lifecyclev1.RecordDeploymentRequest{
			BundleId: t.bundle, IssuanceId: issuance, Target: "web1", Host: "web1.example.net",
			CertificatePath: "/etc/ssl/fullchain.pem", PrivateKeyPath: "/etc/ssl/privkey.pem", DeployTime: timestamppb.New(start), Success: true,
		})
		return err
	},
	lifecyclev1.LifecycleService_WatchEvents_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := lifecyclev1.NewLifecycleServiceClient(lc).WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{BundleId: t.bundle})
		if err != nil {
			return err
		}
		// The stream's headers come once the handler has checked the request; a refusal ends the
		// stream without them.
		if md, err := stream.Header(); err == nil && len(md.Get(lifecycle.WatchStartHeader)) == 1 {
			return nil
		}
		_, err = stream.Recv()
		return err
	},
	lifecyclev1.LifecycleService_EnableHosting_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).EnableHosting(ctx, &lifecyclev1.EnableHostingRequest{BundleId: t.spareBundle})
		return err
	},
	lifecyclev1.LifecycleService_ReissueCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ReissueCertificate(ctx, &lifecyclev1.ReissueCertificateRequest{CertificateId: t.spareCert})
		return err
	},
	lifecyclev1.LifecycleService_ImportCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).ImportCertificate(ctx, &lifecyclev1.ImportCertificateRequest{
			CertificateId: t.spareCert, CertificateChainPem: "not a chain", Contact: contact})
		return err
	},
	lifecyclev1.LifecycleService_RevokeCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).RevokeCertificate(ctx, &lifecyclev1.RevokeCertificateRequest{CertificateId: t.spareCert})
		return err
	},
	lifecyclev1.LifecycleService_RenewCertificate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).RenewCertificate(ctx, &lifecyclev1.RenewCertificateRequest{CertificateId: t.spareCert})
		return err
	},
	lifecyclev1.LifecycleService_UpdateApplicationTemplate_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewLifecycleServiceClient(lc).UpdateApplicationTemplate(ctx, &lifecyclev1.UpdateApplicationTemplateRequest{
			BundleId: t.spareBundle, Domains: []string{"authz.example.com"}, Contact: contact})
		return err
	},
	lifecyclev1.SupportService_ListSupportCases_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).ListSupportCases(ctx, &lifecyclev1.ListSupportCasesRequest{})
		return err
	},
	lifecyclev1.SupportService_GetSupportCase_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).GetSupportCase(ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: t.caseID})
		return err
	},
	lifecyclev1.SupportService_UpdateSupportCase_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).UpdateSupportCase(ctx, &lifecyclev1.UpdateSupportCaseRequest{CaseId: t.caseID, Note: "looking"})
		return err
	},
	lifecyclev1.SupportService_CreateSupportCase_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).CreateSupportCase(ctx, &lifecyclev1.CreateSupportCaseRequest{
			RequestId: ids.New(ids.SupportCase, time.Now()), BundleId: t.bundle, Summary: "please look"})
		return err
	},
	lifecyclev1.SupportService_GetAccountEngineer_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).GetAccountEngineer(ctx, &lifecyclev1.GetAccountEngineerRequest{AccountId: t.account})
		return err
	},
	lifecyclev1.SupportService_SetAccountEngineer_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewSupportServiceClient(lc).SetAccountEngineer(ctx, &lifecyclev1.SetAccountEngineerRequest{AccountId: t.account, Engineer: "bob"})
		return err
	},
	lifecyclev1.AccountService_CreateApiKey_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).CreateApiKey(ctx, &lifecyclev1.CreateApiKeyRequest{Name: "matrix", Role: lifecyclev1.ApiKeyRole_API_KEY_ROLE_READER})
		return err
	},
	lifecyclev1.AccountService_ListApiKeys_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).ListApiKeys(ctx, &lifecyclev1.ListApiKeysRequest{})
		return err
	},
	lifecyclev1.AccountService_RevokeApiKey_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).RevokeApiKey(ctx, &lifecyclev1.RevokeApiKeyRequest{KeyId: t.spareKey})
		return err
	},
	lifecyclev1.AccountService_ListAuditEvents_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).ListAuditEvents(ctx, &lifecyclev1.ListAuditEventsRequest{})
		return err
	},
	lifecyclev1.OperationsService_CreateReissueOperation_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := matrixOperation(ctx, lc, t)
		return err
	},
	lifecyclev1.OperationsService_GetOperation_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		name, err := matrixOperation(ctx, lc, t)
		if err == nil {
			_, err = lifecyclev1.NewOperationsServiceClient(lc).GetOperation(ctx, &lifecyclev1.GetOperationRequest{Name: name})
		}
		return err
	},
	lifecyclev1.OperationsService_ListOperations_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewOperationsServiceClient(lc).ListOperations(ctx, &lifecyclev1.ListOperationsRequest{})
		return err
	},
	lifecyclev1.OperationsService_PauseOperation_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		name, err := matrixOperation(ctx, lc, t)
		if err == nil {
			_, err = lifecyclev1.NewOperationsServiceClient(lc).PauseOperation(ctx, &lifecyclev1.PauseOperationRequest{Name: name})
		}
		return err
	},
	lifecyclev1.OperationsService_ResumeOperation_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		name, err := matrixOperation(ctx, lc, t)
		if err == nil {
			_, err = lifecyclev1.NewOperationsServiceClient(lc).ResumeOperation(ctx, &lifecyclev1.ResumeOperationRequest{Name: name})
		}
		return err
	},
	lifecyclev1.OperationsService_CancelOperation_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		name, err := matrixOperation(ctx, lc, t)
		if err == nil {
			_, err = lifecyclev1.NewOperationsServiceClient(lc).CancelOperation(ctx, &lifecyclev1.CancelOperationRequest{Name: name})
		}
		return err
	},
	lifecyclev1.WebhookService_CreateWebhookEndpoint_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).CreateWebhookEndpoint(ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/matrix"})
		return err
	},
	lifecyclev1.WebhookService_ListWebhookEndpoints_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).ListWebhookEndpoints(ctx, &lifecyclev1.ListWebhookEndpointsRequest{})
		return err
	},
	lifecyclev1.WebhookService_GetWebhookEndpoint_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).GetWebhookEndpoint(ctx, &lifecyclev1.GetWebhookEndpointRequest{WebhookEndpointId: t.endpoint})
		return err
	},
	lifecyclev1.WebhookService_UpdateWebhookEndpoint_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).UpdateWebhookEndpoint(ctx, &lifecyclev1.UpdateWebhookEndpointRequest{
			WebhookEndpoint: &lifecyclev1.WebhookEndpoint{WebhookEndpointId: t.endpoint, Description: "matrix"},
			UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
		return err
	},
	lifecyclev1.WebhookService_DeleteWebhookEndpoint_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).DeleteWebhookEndpoint(ctx, &lifecyclev1.DeleteWebhookEndpointRequest{WebhookEndpointId: t.spareEndpoint})
		return err
	},
	lifecyclev1.WebhookService_RotateWebhookSecret_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).RotateWebhookSecret(ctx, &lifecyclev1.RotateWebhookSecretRequest{WebhookEndpointId: t.endpoint})
		return err
	},
	lifecyclev1.WebhookService_ListWebhookDeliveries_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).ListWebhookDeliveries(ctx, &lifecyclev1.ListWebhookDeliveriesRequest{})
		return err
	},
	lifecyclev1.WebhookService_ReplayWebhookDelivery_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewWebhookServiceClient(lc).ReplayWebhookDelivery(ctx, &lifecyclev1.ReplayWebhookDeliveryRequest{WebhookDeliveryId: t.delivery})
		return err
	},
	lifecyclev1.AccountService_GetAccountSettings_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).GetAccountSettings(ctx, &lifecyclev1.GetAccountSettingsRequest{})
		return err
	},
	lifecyclev1.AccountService_UpdateAccountSettings_FullMethodName: func(ctx context.Context, lc, _ *grpc.ClientConn, t authzTarget) error {
		_, err := lifecyclev1.NewAccountServiceClient(lc).UpdateAccountSettings(ctx, &lifecyclev1.UpdateAccountSettingsRequest{
			Settings:   &lifecyclev1.AccountSettings{ExpiryReminderDays: []int32{30, 14, 7, 3, 1}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"expiry_reminder_days"}}})
		return err
	},
	orderv1.OrderService_ListProducts_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).ListProducts(ctx, &orderv1.ListProductsRequest{})
		return err
	},
	orderv1.OrderService_CreateOrder_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).CreateOrder(ctx, &orderv1.CreateOrderRequest{
			RequestId: ids.New(ids.Order, time.Now()), ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 1})
		return err
	},
	orderv1.OrderService_PayOrder_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).PayOrder(ctx, &orderv1.PayOrderRequest{OrderId: t.order, PaymentReference: "pay-matrix"})
		return err
	},
	orderv1.OrderService_GetOrder_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).GetOrder(ctx, &orderv1.GetOrderRequest{OrderId: t.order})
		return err
	},
	orderv1.OrderService_ListOrders_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).ListOrders(ctx, &orderv1.ListOrdersRequest{})
		return err
	},
	orderv1.OrderService_CancelOrder_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: t.spareOrder})
		return err
	},
	orderv1.OrderService_RefundOrder_FullMethodName: func(ctx context.Context, _, oc *grpc.ClientConn, t authzTarget) error {
		_, err := orderv1.NewOrderServiceClient(oc).RefundOrder(ctx, &orderv1.RefundOrderRequest{OrderId: t.spareOrder})
		return err
	},
}

// accountWide are the methods that name no resource: there is no other account's resource to
// ask for, so the matrix checks them on the caller's own account only (tenant isolation of the
// lists they return is tested with the lists).
var accountWide = map[string]bool{
	lifecyclev1.LifecycleService_ListBundles_FullMethodName:      true,
	lifecyclev1.LifecycleService_ListCertificates_FullMethodName: true,
	lifecyclev1.SupportService_ListSupportCases_FullMethodName:   true,
	lifecyclev1.AccountService_CreateApiKey_FullMethodName:       true,
	lifecyclev1.AccountService_ListApiKeys_FullMethodName:        true,
	lifecyclev1.AccountService_ListAuditEvents_FullMethodName:    true,
	orderv1.OrderService_ListProducts_FullMethodName:             true,
	orderv1.OrderService_CreateOrder_FullMethodName:              true,
	// Operators' operations span accounts: only the support role reaches them at all.
	lifecyclev1.OperationsService_CreateReissueOperation_FullMethodName: true,
	lifecyclev1.OperationsService_GetOperation_FullMethodName:           true,
	lifecyclev1.OperationsService_ListOperations_FullMethodName:         true,
	lifecyclev1.OperationsService_PauseOperation_FullMethodName:         true,
	lifecyclev1.OperationsService_ResumeOperation_FullMethodName:        true,
	lifecyclev1.OperationsService_CancelOperation_FullMethodName:        true,
	lifecyclev1.WebhookService_CreateWebhookEndpoint_FullMethodName:     true,
	lifecyclev1.WebhookService_ListWebhookEndpoints_FullMethodName:      true,
	lifecyclev1.WebhookService_ListWebhookDeliveries_FullMethodName:     true,
	orderv1.OrderService_ListOrders_FullMethodName:                      true,
	lifecyclev1.AccountService_GetAccountSettings_FullMethodName:        true,
	lifecyclev1.AccountService_UpdateAccountSettings_FullMethodName:     true,
}

// wantAccess is the authorization table as the product describes it (docs/security.md), written
// apart from the Policy tables so that a change to them is a change to this too: method name →
// the roles that may call it; "+bundles" marks the methods keys limited to bundles may call.
var wantAccess = map[string]string{
	"CreateBundle": "service", "BatchCreateBundles": "service", "CancelBundle": "service",
	"GetBundle": "owner deployer reader +bundles", "ListBundles": "owner deployer reader +bundles",
	"GetCertificate": "owner deployer reader +bundles", "ListCertificates": "owner deployer reader +bundles",
	"GetCertificateLifecycle": "owner deployer reader +bundles", "WatchEvents": "owner deployer reader +bundles",
	"ExportCertificate": "owner deployer +bundles", "RecordDeployment": "owner deployer +bundles",
	"UpdateBundle": "owner", "SubmitApplication": "owner", "ActivateCertificate": "owner", "EnableHosting": "owner",
	"ReissueCertificate": "owner", "ImportCertificate": "owner", "RevokeCertificate": "owner", "RenewCertificate": "owner",
	"UpdateApplicationTemplate": "owner", "RetryApplication": "owner support",
	"ListSupportCases": "owner reader support", "GetSupportCase": "owner reader support", "UpdateSupportCase": "owner support",
	"CreateSupportCase": "owner", "GetAccountEngineer": "owner reader support", "SetAccountEngineer": "support",
	"CreateApiKey": "owner", "ListApiKeys": "owner", "RevokeApiKey": "owner", "ListAuditEvents": "owner",
	"CreateReissueOperation": "support", "GetOperation": "support", "ListOperations": "support",
	"PauseOperation": "support", "ResumeOperation": "support", "CancelOperation": "support",
	"CreateWebhookEndpoint": "owner", "UpdateWebhookEndpoint": "owner", "DeleteWebhookEndpoint": "owner",
	"RotateWebhookSecret": "owner", "ReplayWebhookDelivery": "owner",
	"ListWebhookEndpoints": "owner reader", "GetWebhookEndpoint": "owner reader", "ListWebhookDeliveries": "owner reader",
	"GetAccountSettings": "owner", "UpdateAccountSettings": "owner",
	"ListProducts": "owner deployer reader +bundles", "CreateOrder": "owner", "PayOrder": "owner",
	"GetOrder": "owner reader", "ListOrders": "owner reader", "CancelOrder": "owner", "RefundOrder": "owner",
}

// TestAuthorizationMatrix calls every RPC of both services with every role's key, on the key's
// own account's resources and on another account's, and checks the answer against the Policy
// tables: a role the table does not name gets PermissionDenied; a key limited to bundles gets
// PermissionDenied from a method that does not confine itself to bundles, and NotFound for a
// bundle of its account outside its list; another account's resource is NotFound to every
// customer role, never PermissionDenied (which would confirm it exists); support and service keys
// act across accounts, as their methods are meant to.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	o := e.startOrders()
	ctx := e.ctx

	policy := map[string]auth.Access{}
	maps.Copy(policy, lifecycle.Policy)
	maps.Copy(policy, order.Policy)
	for m, access := range policy {
		if authzCalls[m] == nil {
			t.Fatalf("%s has no row in authzCalls: add a valid request for it", m)
		}
		var got []string
		for _, r := range access.Roles {
			got = append(got, string(r))
		}
		if access.Bundles {
			got = append(got, "+bundles")
		}
		short := m[strings.LastIndex(m, "/")+1:]
		if want := wantAccess[short]; strings.Join(got, " ") != want {
			t.Errorf("Policy for %s: %q; want %q", short, strings.Join(got, " "), want)
		}
	}
	if len(wantAccess) != len(policy) {
		t.Errorf("wantAccess has %d methods, the Policy tables %d", len(wantAccess), len(policy))
	}

	// A's resources: an order (paid, its bundle delivered) whose first certificate is issued, a
	// support case, and spares. B's alike, made through the service credential.
	a1 := e.purchase(o, "dv-single", 1, 1, false)
	aCert := a1.GetCertificates()[0].GetCertificateId()
	e.issue(application(aCert, "a1.example.com"))
	e.rejectOV(1)
	aCase := e.cases(e.aSupport)
	if len(aCase) != 1 {
		t.Fatalf("A has %d cases after a rejection, want 1", len(aCase))
	}
	aSpare := e.create(t, e.accA, 2, false)
	spareOrder, err := o.a.CreateOrder(ctx, &orderv1.CreateOrderRequest{RequestId: "spare", ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 1})
	if err != nil {
		t.Fatal(err)
	}
	newKey := func(account string, role auth.Role, name string, bundles ...string) (auth.Key, string) {
		k, secret, err := e.identity.NewKey(ctx, auth.KeySpec{AccountID: account, Role: role, Name: name, Bundles: bundles}, auth.Admin)
		if err != nil {
			t.Fatal(err)
		}
		return k, secret
	}
	aSpareKey, _ := newKey(e.accA, auth.RoleReader, "spare")
	aIssued, err := e.a.GetCertificate(ctx, &lifecyclev1.GetCertificateRequest{CertificateId: aCert})
	if err != nil {
		t.Fatal(err)
	}
	own := authzTarget{account: e.accA, bundle: a1.GetBundleId(), cert: aCert, issuance: aIssued.GetCertificate().GetCurrentIssuance().GetIssuanceId(), order: a1.GetOrderId(), caseID: aCase[0].GetCaseId(),
		spareBundle: aSpare.GetBundleId(), spareCert: aSpare.GetCertificates()[0].GetCertificateId(),
		spareOrder: spareOrder.GetOrder().GetOrderId(), spareKey: aSpareKey.ID}
	// A bundle of A's that a key limited to a1 must not see.
	outside := own
	outside.bundle, outside.cert = aSpare.GetBundleId(), aSpare.GetCertificates()[0].GetCertificateId()

	b1 := e.create(t, e.accB, 1, false)
	bCert := b1.GetCertificates()[0].GetCertificateId()
	bOrders := orderv1.NewOrderServiceClient(o.gs.Dial(t, bOwnerKey(t, e)))
	bOrder, err := bOrders.CreateOrder(ctx, &orderv1.CreateOrderRequest{RequestId: "b", ProductId: "dv-single", DomainCount: 1, SubscriptionYears: 1})
	if err != nil {
		t.Fatal(err)
	}
	bCase := rejectFor(t, e, e.accB, e.b)
	bSpare := e.create(t, e.accB, 2, false)
	bSpareKey, _ := newKey(e.accB, auth.RoleReader, "spare")
	other := authzTarget{account: e.accB, bundle: b1.GetBundleId(), cert: bCert, order: bOrder.GetOrder().GetOrderId(), caseID: bCase,
		spareBundle: bSpare.GetBundleId(), spareCert: bSpare.GetCertificates()[0].GetCertificateId(),
		spareOrder: bOrder.GetOrder().GetOrderId(), spareKey: bSpareKey.ID}

	own.endpoint, own.spareEndpoint, other.endpoint, other.spareEndpoint, own.delivery, other.delivery = webhookTargets(t, e)
	outside.endpoint, outside.spareEndpoint, outside.delivery = own.endpoint, own.spareEndpoint, own.delivery

	staff, _, err := e.identity.FindAccount(ctx, "support")
	if err != nil {
		t.Fatal(err)
	}
	svc, _, err := e.identity.FindAccount(ctx, "certhosting-order")
	if err != nil {
		t.Fatal(err)
	}
	type caller struct {
		name    string
		role    auth.Role
		account string
		bundles []string
	}
	callers := []caller{
		{"owner", auth.RoleOwner, e.accA, nil},
		{"deployer", auth.RoleDeployer, e.accA, []string{a1.GetBundleId()}},
		{"reader", auth.RoleReader, e.accA, nil},
		{"limited reader", auth.RoleReader, e.accA, []string{a1.GetBundleId()}},
		{"support", auth.RoleSupport, staff.ID, nil},
		{"service", auth.RoleService, svc.ID, nil},
	}
	methods := slices.Sorted(maps.Keys(policy))
	checked := 0
	for _, c := range callers {
		name := c.name
		if c.role == auth.RoleSupport {
			name = "alice" // cases are assigned to the configured engineers by name
		}
		_, secret := newKey(c.account, c.role, name, c.bundles...)
		lc, oc := e.gs.Dial(t, secret), o.gs.Dial(t, secret)
		for _, m := range methods {
			access := policy[m]
			targets := map[string]authzTarget{"own": own, "other": other}
			if c.bundles != nil {
				targets["own outside the key's bundles"] = outside
			}
			for tname, target := range targets {
				if tname != "own" && accountWide[m] {
					continue
				}
				crossAccount := c.role == auth.RoleSupport || c.role == auth.RoleService
				var want string
				switch {
				case !slices.Contains(access.Roles, c.role), c.bundles != nil && !access.Bundles:
					want = "PermissionDenied"
				case tname != "own" && !crossAccount:
					want = "NotFound"
				default:
					want = "allowed"
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := authzCalls[m](cctx, lc, oc, target)
				cancel()
				got := status.Code(err)
				ok := false
				switch want {
				case "PermissionDenied":
					ok = got == codes.PermissionDenied
				case "NotFound":
					ok = got == codes.NotFound
				default:
					ok = !slices.Contains([]codes.Code{codes.PermissionDenied, codes.NotFound, codes.Unauthenticated, codes.Internal, codes.Unknown}, got)
				}
				if !ok {
					t.Errorf("%s key, %s on %s: %v; want %s", c.name, m, tname, err, want)
				}
				checked++
			}
		}
	}
	t.Logf("%d calls checked: %d methods × %d keys × own/other", checked, len(methods), len(callers))
}

// matrixOperation starts a mass re-issue of the target's account's certificates (a fresh
// request_id each time) and returns its name.
func matrixOperation(ctx context.Context, lc *grpc.ClientConn, t authzTarget) (string, error) {
	resp, err := lifecyclev1.NewOperationsServiceClient(lc).CreateReissueOperation(ctx, &lifecyclev1.CreateReissueOperationRequest{
		RequestId: ids.New(ids.Operation, time.Now()), Selector: &lifecyclev1.ReissueSelector{AccountId: t.account}})
	return resp.GetOperation().GetName(), err
}

// bOwnerKey is a new owner key of B's.
func bOwnerKey(t *testing.T, e *env) string {
	t.Helper()
	_, secret, err := e.identity.NewKey(e.ctx, auth.KeySpec{AccountID: e.accB, Role: auth.RoleOwner, Name: "b orders"}, auth.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// rejectFor has an OV application of account's rejected (the env's CA rejects "Evil" names) and
// returns the support case it opened.
func rejectFor(t *testing.T, e *env, account string, client lifecyclev1.LifecycleServiceClient) string {
	t.Helper()
	req := e.request(account, 1, false)
	req.Product = &lifecyclev1.ProductSnapshot{ProductId: "ov-single", ValidationType: ov, DomainType: single}
	req.DomainCount = 1
	resp, err := e.svc.CreateBundle(e.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	app := application(resp.GetBundle().GetCertificates()[0].GetCertificateId(), "evil.example.com")
	app.Organization = &lifecyclev1.Organization{LegalName: "Evil Corp", Country: "US", Locality: "Springfield", RegistrationNumber: "123"}
	sub, err := client.SubmitApplication(e.ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	e.publish(sub.GetInstructions())
	e.tick()
	cases, err := lifecyclev1.NewSupportServiceClient(e.supportConn).ListSupportCases(e.ctx, &lifecyclev1.ListSupportCasesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases.GetCases() {
		if c.GetCertificateId() == app.GetCertificateId() {
			return c.GetCaseId()
		}
	}
	t.Fatalf("no case for %s's rejected application", account)
	return ""
}
