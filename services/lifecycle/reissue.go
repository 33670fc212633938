package lifecycle

// The mass re-issue (OperationsService): when a CA has an incident, an operator re-issues every
// hosted certificate matching a selector, as a long-running operation (AIP-151) stored in the
// lifecycle database. docs/lifecycle.md, "Mass re-issue", has the rules; in short:
//
//   - A re-issue is the renewal RenewCertificate starts (renewNow): the successor is applied for at
//     once with the template's information and a new key, through the product's CA route as
//     configured now (so an operator moving off a failed CA changes the route first), and it is
//     issued, retried and escalated by the ticker like every renewal.
//   - The operation walks the HOSTED certificates in certificate_id order. Each step starts a
//     batch of renewals and advances the operation's cursor in the same transaction, a
//     compare-and-set on the cursor: a crash or restart neither repeats nor skips a certificate,
//     and two replicas never both start one.
//   - The rate is the operation's (rate_per_second) and never above the CA's own limit
//     (caconfig's max_issuance_rate), counted on the service clock with golang.org/x/time/rate.
//   - A certificate that is not renewable when its turn comes (a renewal already in flight,
//     replaced, revoked, subscription ended) is skipped and counted.

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/pagetoken"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Limits of CreateReissueOperation.
const (
	DefaultReissueRate = 10
	MaxReissueRate     = 10000
	maxIssuer          = 1000
	// reissueBatch bounds the renewals one step starts in one transaction.
	reissueBatch = 200
	// ReissueInterval is how often the Reissuer steps when nothing wakes it.
	ReissueInterval = time.Second
)

// OperationsServer implements lifecyclev1.OperationsServiceServer.
type OperationsServer struct {
	lifecyclev1.UnimplementedOperationsServiceServer
	core
	wake func()
}

// NewOperationsServer returns the server; wake (may be nil) asks the Reissuer to step at once.
func NewOperationsServer(c Config, wake func()) *OperationsServer {
	if wake == nil {
		wake = func() {}
	}
	return &OperationsServer{core: core{c}, wake: wake}
}

var opStateToProto = map[string]lifecyclev1.OperationState{
	store.OpRunning:   lifecyclev1.OperationState_OPERATION_STATE_RUNNING,
	store.OpPaused:    lifecyclev1.OperationState_OPERATION_STATE_PAUSED,
	store.OpCancelled: lifecyclev1.OperationState_OPERATION_STATE_CANCELLED,
	store.OpSucceeded: lifecyclev1.OperationState_OPERATION_STATE_SUCCEEDED,
}

func operationProto(op store.Operation) *lifecyclev1.Operation {
	sel := &lifecyclev1.ReissueSelector{Ca: op.CA, Issuer: op.Issuer, AccountId: op.AccountID}
	if op.IssuedBefore != 0 {
		sel.IssuedBefore = ts(op.IssuedBefore)
	}
	return &lifecyclev1.Operation{
		Name: "operations/" + op.ID, Selector: sel, RatePerSecond: op.Rate, State: opStateToProto[op.State], Done: op.Done(),
		Progress:  &lifecyclev1.ReissueProgress{Matched: op.Matched, Processed: op.Processed, Started: op.Started, Skipped: op.Skipped},
		CreatedBy: op.CreatedBy, CreateTime: ts(op.CreateTime), UpdateTime: ts(op.UpdateTime),
	}
}

// operationID parses a resource name "operations/op_...".
func operationID(name string) (string, error) {
	if name == "" {
		return "", apierr.InvalidArgument("name", "is required")
	}
	id, ok := strings.CutPrefix(name, "operations/")
	if !ok || !ids.Valid(ids.Operation, id) {
		return "", apierr.InvalidArgument("name", "malformed: want \"operations/op_\" followed by 26 base32 characters")
	}
	return id, nil
}

// reissueSelector checks a request's selector.
func (s *OperationsServer) reissueSelector(p *lifecyclev1.ReissueSelector) (store.ReissueSelector, error) {
	var sel store.ReissueSelector
	if p == nil || (p.GetCa() == "" && p.GetIssuer() == "" && p.GetIssuedBefore() == nil && p.GetAccountId() == "") {
		return sel, apierr.InvalidArgument("selector", "is required: set at least one of ca, issuer, issued_before, account_id (a re-issue of everything must be asked for explicitly, e.g. issued_before now)")
	}
	if name := p.GetCa(); name != "" {
		if _, ok := s.CAs.Client(name); !ok {
			return sel, apierr.InvalidArgument("selector.ca", "%s is not a configured CA (configured: %s)", apierr.Quote(name), strings.Join(s.CAs.Names(), ", "))
		}
		sel.CA = name
	}
	if iss := p.GetIssuer(); iss != "" {
		if len(iss) > maxIssuer {
			return sel, apierr.InvalidArgument("selector.issuer", "longer than %d bytes", maxIssuer)
		}
		if err := apierr.CheckText("selector.issuer", iss); err != nil {
			return sel, err
		}
		sel.Issuer = iss
	}
	if tb := p.GetIssuedBefore(); tb != nil {
		if err := tb.CheckValid(); err != nil {
			return sel, apierr.InvalidArgument("selector.issued_before", "not a valid time: %v", err)
		}
		if sel.IssuedBefore = db.Micros(tb.AsTime()); sel.IssuedBefore <= 0 {
			return sel, apierr.InvalidArgument("selector.issued_before", "must be after 1970")
		}
	}
	if acc := p.GetAccountId(); acc != "" {
		if err := ids.Check("selector.account_id", ids.Account, acc); err != nil {
			return sel, err
		}
		sel.AccountID = acc
	}
	return sel, nil
}

// CreateReissueOperation implements OperationsService.CreateReissueOperation.
func (s *OperationsServer) CreateReissueOperation(ctx context.Context, req *lifecyclev1.CreateReissueOperationRequest) (*lifecyclev1.CreateReissueOperationResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkRequestID("request_id", req.GetRequestId()); err != nil {
		return nil, err
	}
	sel, err := s.reissueSelector(req.GetSelector())
	if err != nil {
		return nil, err
	}
	r := req.GetRatePerSecond()
	switch {
	case r == 0:
		r = DefaultReissueRate
	case math.IsNaN(r) || r < 0 || r > MaxReissueRate:
		return nil, apierr.InvalidArgument("rate_per_second", "must be between 0 (the default, %d) and %d", DefaultReissueRate, MaxReissueRate)
	}
	matched, err := s.countMatches(ctx, sel)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	op := store.Operation{
		ID: ids.New(ids.Operation, now), RequestID: req.GetRequestId(), Kind: store.OpReissue, ReissueSelector: sel, Rate: r,
		State: store.OpRunning, Matched: matched, CreatedBy: who.Name, CreateTime: db.Micros(now), UpdateTime: db.Micros(now),
	}
	got, created, err := s.Store.CreateOperation(ctx, op)
	if err != nil {
		return nil, err
	}
	if !created && (got.ReissueSelector != sel || got.Rate != r || got.Kind != store.OpReissue) {
		return nil, apierr.AlreadyExists("request_id", "%s was used for another operation, %s", apierr.Quote(req.GetRequestId()), got.ID)
	}
	if created {
		s.Log.Info("mass re-issue started", "operation", got.ID, "by", who.Name, "matched", matched, "rate", r)
		s.wake()
	}
	return &lifecyclev1.CreateReissueOperationResponse{Operation: operationProto(got)}, nil
}

// countMatches counts the certificates sel matches now: in SQL, and for an issuer selector by
// reading each candidate's chain.
func (s *core) countMatches(ctx context.Context, sel store.ReissueSelector) (int64, error) {
	if sel.Issuer == "" {
		return s.Store.CountReissue(ctx, sel)
	}
	var n int64
	after := ""
	for {
		cs, err := s.Store.ReissueCandidates(ctx, sel, after, 1000, true)
		if err != nil {
			return 0, err
		}
		for _, c := range cs {
			if issuerOf(c.ChainPEM) == sel.Issuer {
				n++
			}
		}
		if len(cs) < 1000 {
			return n, nil
		}
		after = cs[len(cs)-1].CertificateID
	}
}

// issuerOf is the issuer's distinguished name of the first certificate in chain, or "" when it
// does not parse.
func issuerOf(chain string) string {
	block, _ := pem.Decode([]byte(chain))
	if block == nil {
		return ""
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return c.Issuer.String()
}

// GetOperation implements OperationsService.GetOperation.
func (s *OperationsServer) GetOperation(ctx context.Context, req *lifecyclev1.GetOperationRequest) (*lifecyclev1.GetOperationResponse, error) {
	id, err := operationID(req.GetName())
	if err != nil {
		return nil, err
	}
	op, err := s.Store.GetOperation(ctx, id)
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.GetOperationResponse{Operation: operationProto(op)}, nil
}

// ListOperations implements OperationsService.ListOperations.
func (s *OperationsServer) ListOperations(ctx context.Context, req *lifecyclev1.ListOperationsRequest) (*lifecyclev1.ListOperationsResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize(), pagetoken.DefaultSize)
	if err != nil {
		return nil, err
	}
	var st string
	if p := req.GetState(); p != lifecyclev1.OperationState_OPERATION_STATE_UNSPECIFIED {
		for k, v := range opStateToProto {
			if v == p {
				st = k
			}
		}
		if st == "" {
			return nil, apierr.InvalidArgument("state", "unknown operation state %d", int32(p))
		}
	}
	filter := pagetoken.Filter(st)
	pos, _, err := pagetoken.Decode(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	if pos.Key != "" && !ids.Valid(ids.Operation, pos.Key) {
		return nil, apierr.InvalidArgument("page_token", "malformed")
	}
	ops, err := s.Store.ListOperations(ctx, st, pos.Key, size+1)
	if err != nil {
		return nil, err
	}
	resp := &lifecyclev1.ListOperationsResponse{}
	ops, resp.NextPageToken = pagetoken.Cut(ops, size, filter, func(o store.Operation) pagetoken.Position { return pagetoken.Position{Key: o.ID} })
	for _, o := range ops {
		resp.Operations = append(resp.Operations, operationProto(o))
	}
	return resp, nil
}

// setState changes an operation's state by the rule change and logs who did it.
func (s *OperationsServer) setState(ctx context.Context, name, verb string, change func(store.Operation) (string, error)) (*lifecyclev1.Operation, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	id, err := operationID(name)
	if err != nil {
		return nil, err
	}
	op, err := s.Store.SetOperationState(ctx, id, db.Micros(s.Clock.Now()), change)
	if err != nil {
		return nil, err
	}
	s.Log.Info("operation "+verb, "operation", id, "by", who.Name, "state", op.State)
	s.wake()
	return operationProto(op), nil
}

// PauseOperation implements OperationsService.PauseOperation.
func (s *OperationsServer) PauseOperation(ctx context.Context, req *lifecyclev1.PauseOperationRequest) (*lifecyclev1.PauseOperationResponse, error) {
	op, err := s.setState(ctx, req.GetName(), "paused", func(op store.Operation) (string, error) {
		if op.Done() {
			return "", apierr.FailedPrecondition("operation %s is %s: only a running operation is paused", op.ID, op.State)
		}
		return store.OpPaused, nil
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.PauseOperationResponse{Operation: op}, nil
}

// ResumeOperation implements OperationsService.ResumeOperation.
func (s *OperationsServer) ResumeOperation(ctx context.Context, req *lifecyclev1.ResumeOperationRequest) (*lifecyclev1.ResumeOperationResponse, error) {
	op, err := s.setState(ctx, req.GetName(), "resumed", func(op store.Operation) (string, error) {
		if op.Done() {
			return "", apierr.FailedPrecondition("operation %s is %s: only a paused operation is resumed", op.ID, op.State)
		}
		return store.OpRunning, nil
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.ResumeOperationResponse{Operation: op}, nil
}

// CancelOperation implements OperationsService.CancelOperation.
func (s *OperationsServer) CancelOperation(ctx context.Context, req *lifecyclev1.CancelOperationRequest) (*lifecyclev1.CancelOperationResponse, error) {
	op, err := s.setState(ctx, req.GetName(), "cancelled", func(op store.Operation) (string, error) {
		if op.State == store.OpSucceeded {
			return "", apierr.FailedPrecondition("operation %s has succeeded already", op.ID)
		}
		return store.OpCancelled, nil
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.CancelOperationResponse{Operation: op}, nil
}

// Reissuer runs the RUNNING mass re-issue operations: Step starts, for each, the renewals its rate
// and its CAs' limits allow now.
type Reissuer struct {
	core
	wakeTicker func()
	wake       chan struct{}

	mu       sync.Mutex
	limiters map[string]*rate.Limiter // by operation id
	caLimits map[string]*rate.Limiter // by CA name: shared by every operation
}

// NewReissuer returns the worker. wakeTicker (may be nil) asks the ticker to submit the renewals
// started at once.
func NewReissuer(c Config, wakeTicker func()) *Reissuer {
	if wakeTicker == nil {
		wakeTicker = func() {}
	}
	r := &Reissuer{core: core{c}, wakeTicker: wakeTicker, wake: make(chan struct{}, 1),
		limiters: map[string]*rate.Limiter{}, caLimits: map[string]*rate.Limiter{}}
	for name, limit := range c.CARateLimits {
		if limit > 0 {
			r.caLimits[name] = rate.NewLimiter(rate.Limit(limit), burst(limit))
		}
	}
	return r
}

// burst lets a limiter of r per second start one second's worth at once (at least one).
func burst(r float64) int { return max(1, int(math.Ceil(r))) }

// Wake asks Run to step at once (an operation was created, resumed, paused or cancelled).
func (r *Reissuer) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run steps every ReissueInterval (or when woken) until ctx ends. A failed step (the database
// unavailable) is logged and tried again at the next one: its transaction rolled back, so nothing
// was started twice or lost.
func (r *Reissuer) Run(ctx context.Context) error {
	for {
		if _, err := r.Step(ctx); err != nil && ctx.Err() == nil {
			r.Log.Warn("mass re-issue step failed; trying again", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.Clock.After(ReissueInterval):
		case <-r.wake:
		}
	}
}

// Step starts the renewals every running operation may start now and returns how many it started.
func (r *Reissuer) Step(ctx context.Context) (int, error) {
	ops, err := r.Store.RunningOperations(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for _, op := range ops {
		for {
			n, more, err := r.stepOne(ctx, op)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("operation %s: %w", op.ID, err))
			}
			if err != nil || !more {
				break
			}
			if op, err = r.Store.GetOperation(ctx, op.ID); err != nil || op.State != store.OpRunning {
				break
			}
		}
	}
	if total > 0 {
		r.wakeTicker()
	}
	return total, errors.Join(errs...)
}

// limiter is operation op's rate limiter.
func (r *Reissuer) limiter(op store.Operation) *rate.Limiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.limiters[op.ID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(op.Rate), burst(op.Rate)) // full: it counts on the service clock from its first use
		r.limiters[op.ID] = l
	}
	return l
}

// stepOne starts one batch of op's renewals in one transaction; more says whether op's budget
// allows another batch now.
func (r *Reissuer) stepOne(ctx context.Context, op store.Operation) (started int, more bool, err error) {
	now := r.Clock.Now()
	lim := r.limiter(op)
	budget := int(lim.TokensAt(now))
	if budget <= 0 {
		return 0, false, nil
	}
	budget = min(budget, reissueBatch)
	cands, err := r.Store.ReissueCandidates(ctx, op.ReissueSelector, op.AfterID, budget, op.Issuer != "")
	if err != nil {
		return 0, false, err
	}
	finished := len(cands) < budget
	var caTaken map[string]int
	var caFull bool
	err = r.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		started, caTaken, caFull = 0, map[string]int{}, false
		var processed, skipped int64
		last := op.AfterID
		for _, c := range cands {
			if op.Issuer != "" && issuerOf(c.ChainPEM) != op.Issuer {
				processed, last = processed+1, c.CertificateID
				continue
			}
			rn, err := renewable(tx, c.CertificateID, now)
			if refusal := (*apierr.Error)(nil); errors.As(err, &refusal) && refusal.Code == codes.FailedPrecondition {
				processed, skipped, last = processed+1, skipped+1, c.CertificateID
				continue
			}
			if err != nil {
				return err
			}
			caName, _ := r.CAs.Route(rn.b.ProductID, rn.b.ValidationType)
			if l := r.caLimits[caName]; l != nil && int(l.TokensAt(now)) <= caTaken[caName] {
				finished, caFull = false, true // the CA's limit: the rest waits for the next step
				break
			}
			why := fmt.Sprintf("mass re-issue %s (started by %s), replacing certificate %s: instance %d, requested to end at %s",
				op.ID, op.CreatedBy, rn.iss.Serial, rn.next.Sequence, rn.next.NotAfter.Format(time.RFC3339))
			if err := r.startRenewal(tx, rn, state.ActorSupport, why, now, ""); err != nil {
				return err
			}
			caTaken[caName]++
			started, processed, last = started+1, processed+1, c.CertificateID
		}
		return tx.AdvanceOperation(&op, last, processed, int64(started), skipped, finished)
	})
	if err != nil {
		if errors.Is(err, db.ErrConflict) {
			return 0, false, nil // paused, cancelled or stepped by another replica: look again next time
		}
		return 0, false, err
	}
	lim.AllowN(now, started)
	for name, n := range caTaken {
		if l := r.caLimits[name]; l != nil {
			l.AllowN(now, n)
		}
	}
	if finished {
		r.Log.Info("mass re-issue finished", "operation", op.ID, "started", op.Started, "skipped", op.Skipped)
	}
	// Another batch now if this one was full and neither the operation's budget (looked at again
	// then) nor a CA's limit stopped it.
	return started, !finished && !caFull, nil
}
