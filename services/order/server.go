// Package order is the order service: the catalog, orders, payment, and the outbox relay that
// hands each paid order to the lifecycle service exactly once.
//
// Where a purchase becomes instances: PayOrder (this file) writes the order's PAID status and a
// CreateBundle message into the outbox in one transaction; the Relay (relay.go) delivers the
// message to the lifecycle service, which creates the instances (services/lifecycle).
package order

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	orderv1 "github.com/certhosting/certhosting/gen/go/certhosting/order/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/pkg/tracing"
	"github.com/certhosting/certhosting/services/order/store"
)

// Policy is the order service's authorization table (docs/security.md): owners buy, pay, cancel
// and refund; readers of the whole account read orders; every customer key may read the catalog.
// Keys limited to bundles (deployers, limited readers) see no orders: an order is not a bundle.
var Policy = auth.Policy{
	orderv1.OrderService_ListProducts_FullMethodName: auth.AllowScoped(auth.RoleOwner, auth.RoleDeployer, auth.RoleReader),
	orderv1.OrderService_CreateOrder_FullMethodName:  auth.Allow(auth.RoleOwner),
	orderv1.OrderService_PayOrder_FullMethodName:     auth.Allow(auth.RoleOwner),
	orderv1.OrderService_GetOrder_FullMethodName:     auth.Allow(auth.RoleOwner, auth.RoleReader),
	orderv1.OrderService_ListOrders_FullMethodName:   auth.Allow(auth.RoleOwner, auth.RoleReader),
	orderv1.OrderService_CancelOrder_FullMethodName:  auth.Allow(auth.RoleOwner),
	orderv1.OrderService_RefundOrder_FullMethodName:  auth.Allow(auth.RoleOwner),
}

// Server implements orderv1.OrderServiceServer.
type Server struct {
	orderv1.UnimplementedOrderServiceServer

	store    *store.Store
	clk      clockwork.Clock
	log      *slog.Logger
	relay    interface{ Notify() }
	products map[string]store.Product
	catalog  []*orderv1.Product
}

// NewServer loads the catalog (it changes only with a migration, so it is read once) and returns
// the server. relay is woken after each new payment; nil leaves delivery to the relay's own poll.
func NewServer(ctx context.Context, st *store.Store, clk clockwork.Clock, log *slog.Logger, relay interface{ Notify() }) (*Server, error) {
	ps, err := st.Products(ctx)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	s := &Server{store: st, clk: clk, log: log, relay: relay, products: map[string]store.Product{}}
	for _, p := range ps {
		s.products[p.ID] = p
		s.catalog = append(s.catalog, productProto(p))
	}
	return s, nil
}

func caller(ctx context.Context) (auth.Principal, error) {
	p, ok := auth.Caller(ctx)
	if !ok {
		return auth.Principal{}, apierr.Unauthenticated("no verified caller")
	}
	return p, nil
}

// ListProducts implements OrderService.ListProducts.
func (s *Server) ListProducts(ctx context.Context, _ *orderv1.ListProductsRequest) (*orderv1.ListProductsResponse, error) {
	return &orderv1.ListProductsResponse{Products: s.catalog}, nil
}

// maxTokenLen bounds request_id and payment_reference.
const maxTokenLen = 128

// checkToken validates a caller-chosen key: 1..128 printable ASCII characters without spaces.
func checkToken(field, v string) error {
	if v == "" {
		return apierr.InvalidArgument(field, "is required")
	}
	if len(v) > maxTokenLen {
		return apierr.InvalidArgument(field, "must be at most %d characters, got %d", maxTokenLen, len(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return apierr.InvalidArgument(field, "must be printable ASCII without spaces (character %d is not)", i+1)
		}
	}
	return nil
}

// validateCreate checks a CreateOrderRequest against the catalog and returns the product.
func (s *Server) validateCreate(req *orderv1.CreateOrderRequest) (store.Product, error) {
	if err := checkToken("request_id", req.GetRequestId()); err != nil {
		return store.Product{}, err
	}
	if req.GetProductId() == "" {
		return store.Product{}, apierr.InvalidArgument("product_id", "is required")
	}
	p, ok := s.products[req.GetProductId()]
	if !ok {
		return store.Product{}, apierr.InvalidArgument("product_id", "unknown product %s (see ListProducts)", apierr.Quote(req.GetProductId()))
	}
	if y := req.GetSubscriptionYears(); y < 1 || y > 3 {
		return store.Product{}, apierr.InvalidArgument("subscription_years", "must be 1, 2 or 3, got %d", y)
	}
	if req.GetHosting() && req.GetSubscriptionYears() < 2 {
		return store.Product{}, apierr.InvalidArgument("hosting", "needs a subscription of 2 or 3 years, got %d", req.GetSubscriptionYears())
	}
	if n := req.GetDomainCount(); n < 1 || int(n) > p.MaxDomains {
		return store.Product{}, apierr.InvalidArgument("domain_count", "must be between 1 and %d for product %s, got %d", p.MaxDomains, p.ID, n)
	}
	return p, nil
}

// CreateOrder implements OrderService.CreateOrder.
func (s *Server) CreateOrder(ctx context.Context, req *orderv1.CreateOrderRequest) (*orderv1.CreateOrderResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.validateCreate(req)
	if err != nil {
		return nil, err
	}
	now := s.clk.Now()
	o, err := s.store.CreateOrder(ctx, store.Order{
		ID:                ids.New(ids.Order, now),
		AccountID:         who.AccountID,
		RequestID:         req.GetRequestId(),
		Status:            store.StatusUnpaid,
		ProductID:         p.ID,
		ValidationType:    p.ValidationType,
		DomainType:        p.DomainType,
		DomainCount:       int(req.GetDomainCount()),
		SubscriptionYears: int(req.GetSubscriptionYears()),
		Hosting:           req.GetHosting(),
		CurrencyCode:      p.CurrencyCode,
		TotalMinor:        p.YearlyPriceMinor * int64(req.GetDomainCount()) * int64(req.GetSubscriptionYears()),
		CreateTime:        db.Micros(now),
	})
	if err != nil {
		return nil, err
	}
	return &orderv1.CreateOrderResponse{Order: orderProto(o)}, nil
}

// PayOrder implements OrderService.PayOrder.
func (s *Server) PayOrder(ctx context.Context, req *orderv1.PayOrderRequest) (*orderv1.PayOrderResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return nil, err
	}
	if err := checkToken("payment_reference", req.GetPaymentReference()); err != nil {
		return nil, err
	}
	now := s.clk.Now()
	var notify func()
	if s.relay != nil {
		notify = s.relay.Notify
	}
	o, err := s.store.PayOrder(ctx, store.Payment{
		AccountID: who.AccountID,
		OrderID:   req.GetOrderId(),
		Reference: req.GetPaymentReference(),
		BundleID:  ids.New(ids.Bundle, now),
		Time:      now,
		Outbox:    createBundlePayload,
		// The delivery to the lifecycle service continues this call's trace (pkg/tracing).
		TraceContext: tracing.Inject(ctx),
	}, notify)
	if err != nil {
		return nil, err
	}
	return &orderv1.PayOrderResponse{Order: orderProto(o)}, nil
}

// createBundlePayload is the outbox message for a paid order: the CreateBundle request itself,
// in protojson so an operator can read a stuck message.
func createBundlePayload(o store.Order) (string, error) {
	b, err := protojson.Marshal(&lifecyclev1.CreateBundleRequest{
		BundleId:  o.BundleID.String,
		AccountId: o.AccountID,
		OrderId:   o.ID,
		Product: &lifecyclev1.ProductSnapshot{
			ProductId:      o.ProductID,
			ValidationType: lifecyclev1.ValidationType(lifecyclev1.ValidationType_value["VALIDATION_TYPE_"+o.ValidationType]),
			DomainType:     lifecyclev1.DomainType(lifecyclev1.DomainType_value["DOMAIN_TYPE_"+o.DomainType]),
		},
		DomainCount:       int32(o.DomainCount),
		SubscriptionYears: int32(o.SubscriptionYears),
		Hosting:           o.Hosting,
	})
	return string(b), err
}

// GetOrder implements OrderService.GetOrder.
func (s *Server) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.GetOrderResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return nil, err
	}
	o, err := s.store.GetOrder(ctx, who.AccountID, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &orderv1.GetOrderResponse{Order: orderProto(o)}, nil
}

// ListOrders implements OrderService.ListOrders.
func (s *Server) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	status := ""
	if st := req.GetStatus(); st != orderv1.OrderStatus_ORDER_STATUS_UNSPECIFIED {
		var ok bool
		if status, ok = statusFromProto[st]; !ok {
			return nil, apierr.InvalidArgument("status", "unknown order status %d", int32(st))
		}
	}
	filter := pagetoken.Filter(who.AccountID, status)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.Order, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	rows, err := s.store.ListOrders(ctx, who.AccountID, status, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &orderv1.ListOrdersResponse{}
	rows, resp.NextPageToken = pagetoken.Cut(rows, size, filter, func(o store.Order) pagetoken.Position { return pagetoken.Position{Key: o.ID} })
	for _, o := range rows {
		resp.Orders = append(resp.Orders, orderProto(o))
	}
	return resp, nil
}

// CancelOrder implements OrderService.CancelOrder.
func (s *Server) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.CancelOrderResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return nil, err
	}
	o, err := s.store.CancelOrder(ctx, who.AccountID, req.GetOrderId(), s.clk.Now())
	if err != nil {
		return nil, err
	}
	return &orderv1.CancelOrderResponse{Order: orderProto(o)}, nil
}

// RefundOrder implements OrderService.RefundOrder.
func (s *Server) RefundOrder(ctx context.Context, req *orderv1.RefundOrderRequest) (*orderv1.RefundOrderResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return nil, err
	}
	o, err := s.store.RequestRefund(ctx, who.AccountID, req.GetOrderId(), s.clk.Now(), func(o store.Order) (string, error) {
		raw, err := protojson.Marshal(&lifecyclev1.CancelBundleRequest{BundleId: o.BundleID.String, AccountId: o.AccountID, OrderId: o.ID})
		return string(raw), err
	})
	if err != nil {
		return nil, err
	}
	if o.RefundStatus.String == store.RefundRequested {
		s.relay.Notify()
	}
	return &orderv1.RefundOrderResponse{Order: orderProto(o)}, nil
}

var refundStatusToProto = map[string]orderv1.RefundStatus{
	store.RefundRequested: orderv1.RefundStatus_REFUND_STATUS_REQUESTED,
	store.RefundRefunded:  orderv1.RefundStatus_REFUND_STATUS_REFUNDED,
	store.RefundRefused:   orderv1.RefundStatus_REFUND_STATUS_REFUSED,
}

var statusToProto = map[string]orderv1.OrderStatus{
	store.StatusUnpaid:    orderv1.OrderStatus_ORDER_STATUS_UNPAID,
	store.StatusPaid:      orderv1.OrderStatus_ORDER_STATUS_PAID,
	store.StatusCancelled: orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
	store.StatusRefunded:  orderv1.OrderStatus_ORDER_STATUS_REFUNDED,
}

var statusFromProto = map[orderv1.OrderStatus]string{
	orderv1.OrderStatus_ORDER_STATUS_UNPAID:    store.StatusUnpaid,
	orderv1.OrderStatus_ORDER_STATUS_PAID:      store.StatusPaid,
	orderv1.OrderStatus_ORDER_STATUS_CANCELLED: store.StatusCancelled,
	orderv1.OrderStatus_ORDER_STATUS_REFUNDED:  store.StatusRefunded,
}

func orderProto(o store.Order) *orderv1.Order {
	out := &orderv1.Order{
		OrderId:           o.ID,
		Status:            statusToProto[o.Status],
		ProductId:         o.ProductID,
		DomainCount:       int32(o.DomainCount),
		SubscriptionYears: int32(o.SubscriptionYears),
		Hosting:           o.Hosting,
		TotalPrice:        &orderv1.Money{CurrencyCode: o.CurrencyCode, AmountMinor: o.TotalMinor},
		BundleId:          o.BundleID.String,
		CertificateIds:    o.Certificates(),
		RequestId:         o.RequestID,
		PaymentReference:  o.PaymentReference.String,
		CreateTime:        timestamppb.New(db.FromMicros(o.CreateTime)),
	}
	if o.PayTime.Valid {
		out.PayTime = timestamppb.New(db.FromMicros(o.PayTime.Int64))
	}
	if o.CancelTime.Valid {
		out.CancelTime = timestamppb.New(db.FromMicros(o.CancelTime.Int64))
	}
	if o.BundleDeliveryTime.Valid {
		out.BundleDeliveryTime = timestamppb.New(db.FromMicros(o.BundleDeliveryTime.Int64))
	}
	out.RefundStatus, out.RefundMessage = refundStatusToProto[o.RefundStatus.String], o.RefundMessage.String
	if o.RefundTime.Valid {
		out.RefundTime = timestamppb.New(db.FromMicros(o.RefundTime.Int64))
	}
	return out
}

func productProto(p store.Product) *orderv1.Product {
	return &orderv1.Product{
		ProductId:      p.ID,
		DisplayName:    p.DisplayName,
		Brand:          p.Brand,
		ValidationType: orderv1.ValidationType(orderv1.ValidationType_value["VALIDATION_TYPE_"+p.ValidationType]),
		DomainType:     orderv1.DomainType(orderv1.DomainType_value["DOMAIN_TYPE_"+p.DomainType]),
		MaxDomains:     int32(p.MaxDomains),
		YearlyPrice:    &orderv1.Money{CurrencyCode: p.CurrencyCode, AmountMinor: p.YearlyPriceMinor},
	}
}
