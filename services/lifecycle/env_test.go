package lifecycle_test

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// env is a lifecycle server in-process, behind the real interceptor chain, with the order
// service's credential (svc) and two customer accounts (a and b).
type env struct {
	clk  *clockwork.FakeClock
	db   *db.DB
	svc  lifecyclev1.LifecycleServiceClient
	a, b lifecyclev1.LifecycleServiceClient
	// accA and accB are the customers' account ids; keyA is A's key.
	accA, accB, keyA string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clk := clockwork.NewFakeClock()
	identity := grpctest.OpenIdentity(t, clk)
	d := grpctest.OpenDB(t, t.TempDir(), "lifecycle.db", store.Migrations())
	srv := lifecycle.NewServer(store.New(d), clk, grpctest.Logger(t))
	gs := grpctest.Start(t, auth.NewInterceptor(auth.NewVerifier(identity, clk, time.Minute), lifecycle.Policy, 0),
		func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, srv) })
	svc := grpctest.NewCaller(t, identity, "certhosting-order", auth.RoleService)
	a := grpctest.NewCaller(t, identity, "a", auth.RoleCustomer)
	b := grpctest.NewCaller(t, identity, "b", auth.RoleCustomer)
	client := func(key string) lifecyclev1.LifecycleServiceClient {
		return lifecyclev1.NewLifecycleServiceClient(gs.Dial(t, key))
	}
	return &env{clk: clk, db: d, svc: client(svc.Key), a: client(a.Key), b: client(b.Key), accA: a.AccountID, accB: b.AccountID, keyA: a.Key}
}

// request is a valid CreateBundleRequest for a new order of account, with fresh ids. The clock
// moves on a second after each, so bundles made one after another sort newest first by id.
func (e *env) request(account string, years int32, hosting bool) *lifecyclev1.CreateBundleRequest {
	now := e.clk.Now()
	e.clk.Advance(time.Second)
	return &lifecyclev1.CreateBundleRequest{
		BundleId:  ids.New(ids.Bundle, now),
		AccountId: account,
		OrderId:   ids.New(ids.Order, now),
		Product: &lifecyclev1.ProductSnapshot{
			ProductId:      "dv-multi",
			ValidationType: lifecyclev1.ValidationType_VALIDATION_TYPE_DV,
			DomainType:     lifecyclev1.DomainType_DOMAIN_TYPE_MULTI,
		},
		DomainCount:       3,
		SubscriptionYears: years,
		Hosting:           hosting,
	}
}

// create makes a bundle through the service credential.
func (e *env) create(t *testing.T, account string, years int32, hosting bool) *lifecyclev1.Bundle {
	t.Helper()
	resp, err := e.svc.CreateBundle(context.Background(), e.request(account, years, hosting))
	if err != nil {
		t.Fatalf("CreateBundle(%d years, hosting %v): %v", years, hosting, err)
	}
	return resp.GetBundle()
}

// certIDs lists the ids of certificates, in order.
func certIDs(cs []*lifecyclev1.Certificate) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.GetCertificateId())
	}
	return out
}
