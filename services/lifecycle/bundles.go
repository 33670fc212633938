package lifecycle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// validateCreateBundle checks a CreateBundleRequest field by field.
func validateCreateBundle(req *lifecyclev1.CreateBundleRequest) error {
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return err
	}
	if err := ids.Check("account_id", ids.Account, req.GetAccountId()); err != nil {
		return err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return err
	}
	p := req.GetProduct()
	switch {
	case p.GetProductId() == "":
		return apierr.InvalidArgument("product.product_id", "is required")
	case p.GetValidationType() == lifecyclev1.ValidationType_VALIDATION_TYPE_UNSPECIFIED || lifecyclev1.ValidationType_name[int32(p.GetValidationType())] == "":
		return apierr.InvalidArgument("product.validation_type", "must be DV, OV or EV")
	case p.GetDomainType() == lifecyclev1.DomainType_DOMAIN_TYPE_UNSPECIFIED || lifecyclev1.DomainType_name[int32(p.GetDomainType())] == "":
		return apierr.InvalidArgument("product.domain_type", "must be SINGLE, WILDCARD or MULTI")
	}
	if n := req.GetDomainCount(); n < 1 || n > 1000 {
		return apierr.InvalidArgument("domain_count", "must be between 1 and 1000, got %d", n)
	}
	if y := req.GetSubscriptionYears(); y < 1 || y > 3 {
		return apierr.InvalidArgument("subscription_years", "must be 1, 2 or 3, got %d", y)
	}
	if req.GetHosting() && req.GetSubscriptionYears() < 2 {
		return apierr.InvalidArgument("hosting", "needs a subscription of 2 or 3 years, got %d", req.GetSubscriptionYears())
	}
	return nil
}

// CreateBundle implements LifecycleService.CreateBundle: a paid order becomes one certificate
// instance per subscription year, the first PENDING_APPLICATION and the rest NOT_ACTIVATED.
func (s *Server) CreateBundle(ctx context.Context, req *lifecyclev1.CreateBundleRequest) (*lifecyclev1.CreateBundleResponse, error) {
	if err := validateCreateBundle(req); err != nil {
		return nil, err
	}
	nb := s.newBundle(req)
	b, created, err := s.Store.CreateBundle(ctx, nb)
	if err != nil {
		return nil, err
	}
	out, err := s.createdBundle(ctx, nb, b, created)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CreateBundleResponse{Bundle: out}, nil
}

// maxBatchCreate is the most requests one BatchCreateBundles call takes (AIP-233 suggests 1000).
const maxBatchCreate = 1000

// BatchCreateBundles implements LifecycleService.BatchCreateBundles: CreateBundle for up to
// maxBatchCreate requests, written in one transaction (all or nothing). It shares CreateBundle's
// validation, row building, idempotency (store.createBundlesTx) and answer, so a bundle created
// by either RPC is the same bundle; only the number of commits differs, which is the point: the
// order service's relay sends a sweep's paid orders in one call and one commit.
func (s *Server) BatchCreateBundles(ctx context.Context, req *lifecyclev1.BatchCreateBundlesRequest) (*lifecyclev1.BatchCreateBundlesResponse, error) {
	reqs := req.GetRequests()
	switch {
	case len(reqs) == 0:
		return nil, apierr.InvalidArgument("requests", "is required")
	case len(reqs) > maxBatchCreate:
		return nil, apierr.InvalidArgument("requests", "takes at most %d requests, got %d", maxBatchCreate, len(reqs))
	}
	seen := make(map[string]int, len(reqs))
	nbs := make([]store.NewBundle, len(reqs))
	for i, r := range reqs {
		if err := validateCreateBundle(r); err != nil {
			return nil, batchError(i, err)
		}
		// Two requests for one bundle in one batch would make the second a "repeated delivery" of
		// a bundle this very transaction created; refuse it instead, as AIP-233 asks of batches.
		if j, dup := seen[r.GetBundleId()]; dup {
			return nil, apierr.InvalidArgument(fmt.Sprintf("requests[%d].bundle_id", i), "repeats requests[%d]", j)
		}
		seen[r.GetBundleId()] = i
		nbs[i] = s.newBundle(r)
	}
	bs, created, failed, err := s.Store.CreateBundles(ctx, nbs)
	if err != nil {
		if failed >= 0 {
			// The store's refusals name the field of one bundle (AlreadyExists on bundle_id or
			// order_id): say which request it was.
			return nil, batchError(failed, err)
		}
		return nil, err
	}
	out := &lifecyclev1.BatchCreateBundlesResponse{Bundles: make([]*lifecyclev1.Bundle, len(nbs))}
	for i, nb := range nbs {
		if out.Bundles[i], err = s.createdBundle(ctx, nb, bs[i], created[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchError names the request of a batch an error is about: field f becomes requests[i].f.
func batchError(i int, err error) error {
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		return err
	}
	named := *ae
	named.Field = fmt.Sprintf("requests[%d]", i)
	if ae.Field != "" {
		named.Field += "." + ae.Field
	}
	return &named
}

// newBundle builds the rows of a validated CreateBundleRequest: the bundle and one instance per
// subscription year, the first PENDING_APPLICATION and the rest NOT_ACTIVATED.
func (s *Server) newBundle(req *lifecyclev1.CreateBundleRequest) store.NewBundle {
	now := s.Clock.Now()
	nowMicros := db.Micros(now)
	p := req.GetProduct()
	nb := store.NewBundle{
		Bundle: store.Bundle{
			ID:                req.GetBundleId(),
			AccountID:         req.GetAccountId(),
			OrderID:           req.GetOrderId(),
			ProductID:         p.GetProductId(),
			ValidationType:    p.GetValidationType().String()[len("VALIDATION_TYPE_"):],
			DomainType:        p.GetDomainType().String()[len("DOMAIN_TYPE_"):],
			DomainCount:       int(req.GetDomainCount()),
			Hosting:           req.GetHosting(),
			SubscriptionYears: int(req.GetSubscriptionYears()),
			CreateTime:        nowMicros,
			HostingStatus:     store.HostingNotHosted,
		},
		Reason: fmt.Sprintf("order %s paid", req.GetOrderId()),
	}
	if req.GetHosting() {
		nb.Bundle.HostingStatus = store.HostingWaiting
	}
	for seq := 1; seq <= int(req.GetSubscriptionYears()); seq++ {
		st := state.NotActivated
		if seq == 1 {
			st = state.PendingApplication
		}
		nb.Certificates = append(nb.Certificates, store.Certificate{
			ID: ids.New(ids.Certificate, now), BundleID: req.GetBundleId(), AccountID: req.GetAccountId(),
			Sequence: seq, State: st, CreateTime: nowMicros, UpdateTime: nowMicros,
		})
	}
	return nb
}

// createdBundle is the answer for one bundle the store created (created) or found (a repeated
// delivery, b as stored).
func (s *Server) createdBundle(ctx context.Context, nb store.NewBundle, b store.Bundle, created bool) (*lifecyclev1.Bundle, error) {
	if created {
		s.Log.Info("bundle created", "bundle_id", b.ID, "order_id", b.OrderID, "account", b.AccountID,
			"years", b.SubscriptionYears, "hosting", b.Hosting)
		// The rows just committed are exactly nb (new instances have no issuance or application
		// yet): answer from it rather than reading them back.
		views := make([]store.CertificateView, len(nb.Certificates))
		for i, c := range nb.Certificates {
			views[i].Certificate = c
		}
		return bundleProto(nb.Bundle, views), nil
	}
	// A repeated delivery: answer with the bundle as it is now.
	b, certs, err := s.Store.BundleView(ctx, b.AccountID, b.ID)
	if err != nil {
		return nil, err
	}
	return bundleProto(b, certs), nil
}

// GetBundle implements LifecycleService.GetBundle.
func (s *Server) GetBundle(ctx context.Context, req *lifecyclev1.GetBundleRequest) (*lifecyclev1.GetBundleResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return nil, err
	}
	if !who.Sees(req.GetBundleId()) {
		return nil, apierr.NotFound("bundle", req.GetBundleId())
	}
	b, certs, err := s.Store.BundleView(ctx, who.AccountID, req.GetBundleId())
	if err != nil {
		return nil, err
	}
	out := bundleProto(b, certs)
	if b.Hosting && b.TemplateApplicationID.Valid {
		tmpl, err := s.Store.ApplicationOf(ctx, b.AccountID, b.TemplateApplicationID.String)
		if err != nil {
			return nil, err
		}
		out.ApplicationTemplate = applicationProto(tmpl)
	}
	if err := s.addDeployments(ctx, out); err != nil {
		return nil, err
	}
	return &lifecyclev1.GetBundleResponse{Bundle: out}, nil
}

// ListBundles implements LifecycleService.ListBundles.
func (s *Server) ListBundles(ctx context.Context, req *lifecyclev1.ListBundlesRequest) (*lifecyclev1.ListBundlesResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	f := store.BundleFilter{AccountID: who.AccountID, Only: who.Bundles}
	if f.State, err = stateFilter(req.GetState()); err != nil {
		return nil, err
	}
	lf, err := checkListFilters(req.GetDomain(), req.GetHostingStatus(), req.GetExpireBefore())
	if err != nil {
		return nil, err
	}
	f.Domain, f.HostingStatus, f.ExpireBefore = lf.domain, lf.hostingStatus, lf.expireBefore
	filter := pagetoken.Filter(append([]string{who.AccountID, string(f.State)}, lf.token()...)...)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.Bundle, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	bs, certs, err := s.Store.ListBundles(ctx, f, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListBundlesResponse{}
	bs, resp.NextPageToken = pagetoken.Cut(bs, size, filter, func(b store.Bundle) pagetoken.Position { return pagetoken.Position{Key: b.ID} })
	// Every instance of the page in one Views call (two queries), not two queries per bundle.
	var all []store.Certificate
	for _, b := range bs {
		all = append(all, certs[b.ID]...)
	}
	views, err := s.Store.Views(ctx, all)
	if err != nil {
		return nil, err
	}
	byBundle := map[string][]store.CertificateView{}
	for _, v := range views {
		byBundle[v.BundleID] = append(byBundle[v.BundleID], v)
	}
	for _, b := range bs {
		resp.Bundles = append(resp.Bundles, bundleProto(b, byBundle[b.ID]))
	}
	return resp, nil
}

// Bounds of a bundle's renew_before setting.
const (
	minRenewBefore        = time.Hour
	maxRenewBeforeSetting = 60 * 24 * time.Hour
)

// UpdateBundle implements LifecycleService.UpdateBundle.
func (s *Server) UpdateBundle(ctx context.Context, req *lifecyclev1.UpdateBundleRequest) (*lifecyclev1.UpdateBundleResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return nil, err
	}
	// The maintenance window is set, cleared, or (neither asked) kept; a request about the window
	// alone keeps renew_before too (renew_before unset otherwise restores the default, as before
	// the window existed).
	setWindow, clearWindow := req.GetMaintenanceWindow() != nil, req.GetClearMaintenanceWindow()
	var window *MaintenanceWindow
	if setWindow {
		if clearWindow {
			return nil, apierr.InvalidArgument("clear_maintenance_window", "cannot be set together with maintenance_window")
		}
		if window, err = windowFromProto("maintenance_window", req.GetMaintenanceWindow()); err != nil {
			return nil, err
		}
	}
	// The expected deployment targets likewise: set, cleared, or kept (deployments.go).
	setTargets, clearTargets := len(req.GetExpectedDeploymentTargets()) > 0, req.GetClearExpectedDeploymentTargets()
	var targets []string
	if setTargets {
		if clearTargets {
			return nil, apierr.InvalidArgument("clear_expected_deployment_targets", "cannot be set together with expected_deployment_targets")
		}
		if targets, err = checkTargets("expected_deployment_targets", req.GetExpectedDeploymentTargets()); err != nil {
			return nil, err
		}
	}
	keepRenewBefore := req.GetRenewBefore() == nil && (setWindow || clearWindow || setTargets || clearTargets)
	var override sql.NullInt64
	if rb := req.GetRenewBefore(); rb != nil {
		if err := rb.CheckValid(); err != nil {
			return nil, apierr.InvalidArgument("renew_before", "%v", err)
		}
		d := rb.AsDuration()
		if d != 0 && (d < minRenewBefore || d > maxRenewBeforeSetting) {
			return nil, apierr.InvalidArgument("renew_before", "must be between %s and %s (or zero for the default), got %s",
				minRenewBefore, maxRenewBeforeSetting, d)
		}
		if d != 0 {
			override = sql.NullInt64{Int64: int64(d / time.Second), Valid: true}
		}
	}
	current, _, err := s.Store.GetBundle(ctx, who.AccountID, req.GetBundleId())
	if err != nil {
		return nil, err
	}
	_, client := s.CAs.Route(current.ProductID, current.ValidationType)
	margin := WindowMargin(client)
	// The renewal must leave room for the CA's verdict before the escalation (half the window):
	// otherwise a missing record would reach a person as a late renewal, its cause unknown.
	if override.Valid {
		d := time.Duration(override.Int64) * time.Second
		if client != nil {
			if vt, ok := client.(ca.VerdictTimer); ok && d/2 <= vt.VerdictTimeout() {
				return nil, apierr.InvalidArgument("renew_before", "must be more than twice the CA's DNS verdict timeout (%s), "+
					"so that a failed verification is known before the renewal is escalated; got %s", vt.VerdictTimeout(), d)
			}
		}
	}
	now := s.Clock.Now()
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		b, err := tx.Bundle(req.GetBundleId())
		if err != nil {
			return err
		}
		if keepRenewBefore {
			override = b.RenewBeforeSeconds
		}
		b.RenewBeforeSeconds = override
		if setWindow || clearWindow {
			b.MaintenanceWindow = windowColumn(window)
		}
		if err := tx.SaveBundle(&b, nil); err != nil {
			return err
		}
		if setTargets || clearTargets {
			if err := tx.SetExpectedTargets(b.ID, targets); err != nil {
				return err
			}
		}
		detail := "renew_before: the default"
		if override.Valid {
			detail = fmt.Sprintf("renew_before: %s", time.Duration(override.Int64)*time.Second)
		}
		if setWindow {
			detail += "; maintenance_window: " + window.String()
		} else if clearWindow {
			detail += "; maintenance_window: none"
		}
		if setTargets {
			detail += "; expected_deployment_targets: " + strings.Join(targets, ", ")
		} else if clearTargets {
			detail += "; expected_deployment_targets: none"
		}
		if err := tx.Audit(auth.NewAuditEvent(now, b.AccountID, auth.AuditHostingChanged, who, b.ID, detail)); err != nil {
			return err
		}
		// The hosted certificate whose renewal has not started yet moves to the new schedule: the
		// renewal time renew_before gives (a time a window had put off the renewal to is
		// forgotten: the ticker applies the bundle's window, if any, when that time comes).
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if c.State != state.Hosted || !c.RenewAt.Valid || !c.CurrentIssuanceID.Valid {
				continue
			}
			iss, err := tx.Issuance(c.CurrentIssuanceID.String)
			if err != nil {
				return err
			}
			nb, na := db.FromMicros(iss.NotBefore), db.FromMicros(iss.NotAfter)
			rb := RenewBefore(na.Sub(nb), time.Duration(override.Int64)*time.Second)
			c.RenewAt = sql.NullInt64{Int64: db.Micros(na.Add(-rb)), Valid: true}
			c.EscalateAt = sql.NullInt64{Int64: db.Micros(na.Add(-EscalateBefore(na.Sub(nb), rb))), Valid: true}
			// A new window must open in time for this renewal: between now and the escalation, the
			// margin before it. (The renewal waits only for a window after its renewal time; one
			// that opens only before it is no help, and the renewal then starts at once.)
			if setWindow {
				deadline := db.FromMicros(c.EscalateAt.Int64).Add(-margin)
				if next := window.Next(now); next.IsZero() || !next.Before(deadline) {
					return apierr.InvalidArgument("maintenance_window", "%s does not open between now and %s (%s before the "+
						"renewal of the certificate expiring at %s is escalated): renewals could not wait for it",
						window, deadline.Format(time.RFC3339), margin, na.Format(time.RFC3339))
				}
			}
			if err := tx.SaveSchedule(&c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.wakeTicker()
	b, views, err := s.Store.BundleView(ctx, who.AccountID, req.GetBundleId())
	if err != nil {
		return nil, err
	}
	out := bundleProto(b, views)
	if err := s.addDeployments(ctx, out); err != nil {
		return nil, err
	}
	return &lifecyclev1.UpdateBundleResponse{Bundle: out}, nil
}

// CancelBundle implements LifecycleService.CancelBundle: the bundle of a refunded order is
// cancelled, every instance CANCELLED in one transaction, provided none was ever applied for.
func (s *Server) CancelBundle(ctx context.Context, req *lifecyclev1.CancelBundleRequest) (*lifecyclev1.CancelBundleResponse, error) {
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return nil, err
	}
	if err := ids.Check("account_id", ids.Account, req.GetAccountId()); err != nil {
		return nil, err
	}
	if err := ids.Check("order_id", ids.Order, req.GetOrderId()); err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	cancelled := false
	err := s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		b, err := tx.Bundle(req.GetBundleId())
		if err != nil || b.AccountID != req.GetAccountId() || b.OrderID != req.GetOrderId() {
			return apierr.NotFound("bundle", req.GetBundleId())
		}
		certs, err := tx.Certificates(b.ID)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if c.State == state.Cancelled {
				continue
			}
			if c.CurrentApplicationID.Valid || (c.State != state.NotActivated && c.State != state.PendingApplication) {
				return apierr.FailedPrecondition("instance %d (%s) of bundle %s was applied for (it is %s): a bundle in use cannot be refunded",
					c.Sequence, c.ID, b.ID, c.State)
			}
		}
		for i := range certs {
			if certs[i].State == state.Cancelled {
				continue
			}
			if err := tx.Transition(&certs[i], state.Cancelled, state.ActorSystem, store.EventCancelled,
				fmt.Sprintf("order %s refunded", b.OrderID)); err != nil {
				return err
			}
			cancelled = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cancelled {
		s.Log.Info("bundle cancelled", "bundle_id", req.GetBundleId(), "order_id", req.GetOrderId(), "account", req.GetAccountId())
	}
	b, views, err := s.Store.BundleView(ctx, req.GetAccountId(), req.GetBundleId())
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CancelBundleResponse{Bundle: bundleProto(b, views)}, nil
}
