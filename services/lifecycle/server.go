// Package lifecycle is the lifecycle service: bundles and their certificate instances, the
// instance state machine (package state), and the history of every instance.
//
// Where a purchase becomes instances: CreateBundle (bundles.go), called by the order service's
// outbox relay for each paid order.
package lifecycle

import (
	"context"
	"log/slog"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Policy lists who may call each LifecycleService method. CreateBundle is for the order
// service's own credential only; everything else is for customers, each on its own account.
var Policy = auth.Policy{
	lifecyclev1.LifecycleService_CreateBundle_FullMethodName:            {auth.RoleService},
	lifecyclev1.LifecycleService_GetBundle_FullMethodName:               {auth.RoleCustomer},
	lifecyclev1.LifecycleService_ListBundles_FullMethodName:             {auth.RoleCustomer},
	lifecyclev1.LifecycleService_GetCertificate_FullMethodName:          {auth.RoleCustomer},
	lifecyclev1.LifecycleService_ListCertificates_FullMethodName:        {auth.RoleCustomer},
	lifecyclev1.LifecycleService_GetCertificateLifecycle_FullMethodName: {auth.RoleCustomer},
}

// Server implements lifecyclev1.LifecycleServiceServer.
type Server struct {
	lifecyclev1.UnimplementedLifecycleServiceServer

	store *store.Store
	clk   clockwork.Clock
	log   *slog.Logger
}

// NewServer returns the server.
func NewServer(st *store.Store, clk clockwork.Clock, log *slog.Logger) *Server {
	return &Server{store: st, clk: clk, log: log}
}

func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.Caller(ctx)
	if !ok {
		return auth.Principal{}, apierr.Unauthenticated("no verified caller")
	}
	return p, nil
}

func ts(micros int64) *timestamppb.Timestamp { return timestamppb.New(db.FromMicros(micros)) }

func bundleProto(b store.Bundle, certs []store.Certificate) *lifecyclev1.Bundle {
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
	}
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certificateProto(c))
	}
	return out
}

func certificateProto(c store.Certificate) *lifecyclev1.Certificate {
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
	return out
}
