package lifecycle

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// CreateBundle answers a new bundle from what it wrote, without reading it back; the answer must
// be exactly what GetBundle reads, for the first delivery and for a repeated one.
func TestCreateBundleAnswersWhatGetBundleReads(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, filepath.Join(t.TempDir(), "lifecycle.db"), db.Options{Migrations: store.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	clk := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC))
	s := NewServer(Config{Store: store.New(d, nil), Clock: clk, Log: slog.New(slog.DiscardHandler)}, NewEventHub(), nil)

	account := ids.New(ids.Account, clk.Now())
	req := &lifecyclev1.CreateBundleRequest{
		BundleId: ids.New(ids.Bundle, clk.Now()), AccountId: account, OrderId: ids.New(ids.Order, clk.Now()),
		Product: &lifecyclev1.ProductSnapshot{ProductId: "dv-single", ValidationType: lifecyclev1.ValidationType_VALIDATION_TYPE_DV,
			DomainType: lifecyclev1.DomainType_DOMAIN_TYPE_SINGLE},
		DomainCount: 1, SubscriptionYears: 3, Hosting: true,
	}
	first, err := s.CreateBundle(auth.WithCaller(ctx, auth.Principal{Role: auth.RoleService}), req)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	again, err := s.CreateBundle(auth.WithCaller(ctx, auth.Principal{Role: auth.RoleService}), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetBundle(auth.WithCaller(ctx, auth.Principal{AccountID: account, Role: auth.RoleOwner}),
		&lifecyclev1.GetBundleRequest{BundleId: req.GetBundleId()})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetBundle().GetCertificates()); n != 3 {
		t.Fatalf("GetBundle: %d certificates, want 3", n)
	}
	// The bundle records the order it came from (the order service's refund, CancelBundle, is
	// checked against it).
	if o := got.GetBundle().GetOrderId(); o != req.GetOrderId() {
		t.Errorf("GetBundle: order_id %q, want %q", o, req.GetOrderId())
	}
	for name, resp := range map[string]*lifecyclev1.CreateBundleResponse{"first delivery": first, "repeated delivery": again} {
		if !proto.Equal(resp.GetBundle(), got.GetBundle()) {
			t.Errorf("%s: CreateBundle answered\n%v\nGetBundle reads\n%v", name, resp.GetBundle(), got.GetBundle())
		}
	}
}
