package acme

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// Submit implements ca.Client: it stores the application, creates the order, publishes the
// challenges' values and accepts the challenges, and returns without waiting for validation. A
// second Submit with the same Request.ID returns the first one's submission, carrying on where the
// first stopped if it failed half-way. Errors are transient; a refusal by the CA is recorded and
// returned by Status.
func (c *Client) Submit(ctx context.Context, req ca.Request) (ca.Submission, error) {
	if req.ID == "" {
		return ca.Submission{}, errors.New("acme: Request.ID is required (it is the idempotency key)")
	}
	now := c.clk.Now()
	domains, problem := checkRequest(req)
	binding := req.Binding
	if binding == "" {
		// Without a binding, an application is bound to itself: its CNAMEs serve nothing else.
		binding = "application:" + req.ID
	}
	app := application{
		Ref: ids.New(refKind, now), RequestID: req.ID, DirectoryURL: c.dir, Domains: domains, CSR: req.CSR,
		Binding: binding, Instructions: instructions(c.zone, binding, domains), State: statePending, CreateTime: now,
	}
	if c.sendNotAfter {
		app.NotAfter = req.NotAfter
		if app.NotAfter.IsZero() && req.Lifetime > 0 {
			app.NotAfter = now.Add(req.Lifetime) // the CA's not_before is about now
		}
	}
	if len(req.Replaces) > 0 {
		id, err := ariCertID(req.Replaces)
		if err != nil {
			c.log.Warn("renewal sent without replaces: the replaced certificate does not parse", "id", req.ID, "err", err)
		}
		app.Replaces = id
	}
	if problem != "" {
		app.Domains = req.Domains
		app.State, app.Reason, app.Message, app.DecideTime = stateRejected, string(ca.ReasonPolicy), problem, now
	}
	stored, err := c.store.createApplication(ctx, app)
	if err != nil {
		return ca.Submission{}, fmt.Errorf("acme: submit %s: %w", req.ID, err)
	}
	sub := ca.Submission{Ref: stored.Ref, Instructions: stored.Instructions}
	if stored.Ref == app.Ref {
		c.log.Info("application submitted", "ref", app.Ref, "id", req.ID, "domains", app.Domains,
			"replaces", app.Replaces, "state", app.State, "message", app.Message)
	}
	if stored.State != statePending {
		return sub, nil
	}
	if _, err := c.step(ctx, stored.Ref); err != nil {
		return ca.Submission{}, fmt.Errorf("acme: submit %s: %w", req.ID, err)
	}
	return sub, nil
}

// step moves a stored application on under its lock: reads it afresh (a concurrent call may have
// moved it meanwhile), answers a decided one from the store, and advances a pending one.
func (c *Client) step(ctx context.Context, ref string) (ca.Status, error) {
	unlock, err := c.refLocks.lock(ctx, ref)
	if err != nil {
		return ca.Status{}, err
	}
	defer unlock()
	app, err := c.store.application(ctx, ref)
	if err != nil {
		return ca.Status{}, err
	}
	if app.State != statePending {
		c.cleanUp(ctx, app)
		return app.verdict(), nil
	}
	return c.advance(ctx, app)
}

// checkRequest is what this client refuses before asking the CA: a pure function of the request.
// It returns the domains normalized and the problem, "" when there is none; a problem is a
// verdict (ReasonPolicy), never an error. Everything else (names the CA will not certify, a CSR
// it does not like) the CA itself decides.
func checkRequest(req ca.Request) (domains []string, problem string) {
	if req.Validation != "" && req.Validation != "DV" {
		return nil, fmt.Sprintf("ACME validates domain control only (DV); %s validation needs a CA that checks organizations", req.Validation)
	}
	if len(req.Domains) == 0 {
		return nil, "no domains requested"
	}
	for _, d := range req.Domains {
		if d = normalizeDomain(d); d == "" {
			return nil, "an empty domain name is requested"
		}
		if !slices.Contains(domains, d) {
			domains = append(domains, d)
		}
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fmt.Sprintf("the CSR does not parse: %v", err)
	}
	// The CA refuses at finalize, after validation, a CSR whose names are not the order's.
	var names []string
	for _, n := range csr.DNSNames {
		if n = normalizeDomain(n); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if !sameSet(names, domains) {
		return nil, fmt.Sprintf("the CSR names %q, not the requested domains %q", csr.DNSNames, domains)
	}
	return domains, ""
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}

// ariCertID is the RFC 9773 certificate id of a PEM chain's first certificate.
func ariCertID(chainPEM []byte) (string, error) {
	leaf, err := firstCertificate(chainPEM)
	if err != nil {
		return "", err
	}
	return api.MakeARICertID(leaf)
}

func firstCertificate(chainPEM []byte) (*x509.Certificate, error) {
	for rest := chainPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, errors.New("no CERTIFICATE block in PEM")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// Status implements ca.Client: it polls the order and moves it on (see the package comment).
func (c *Client) Status(ctx context.Context, ref string) (ca.Status, error) {
	st, err := c.step(ctx, ref)
	if errors.Is(err, errNoApplication) {
		return ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: fmt.Sprintf("unknown application %q", ref)}, nil
	}
	if err != nil {
		return ca.Status{}, fmt.Errorf("acme: status %s: %w", ref, err)
	}
	return st, nil
}

// verdict is a decided application's answer to Status.
func (a application) verdict() ca.Status {
	if a.State == stateIssued {
		return ca.Status{State: ca.Issued, ChainPEM: []byte(a.ChainPEM)}
	}
	return ca.Status{State: ca.Rejected, Reason: ca.Reason(a.Reason), Message: a.Message}
}

// decide records the verdict of a pending application and removes its published values. When
// another call decided first, its verdict is the answer.
func (c *Client) decide(ctx context.Context, app application, d decision) (ca.Status, error) {
	err := c.store.decide(ctx, app.Ref, d, c.clk.Now())
	if errors.Is(err, db.ErrConflict) {
		cur, err := c.store.application(ctx, app.Ref)
		if err != nil {
			return ca.Status{}, err
		}
		return cur.verdict(), nil
	}
	if err != nil {
		return ca.Status{}, err
	}
	app.State, app.Reason, app.Message, app.ChainPEM = d.state, string(d.reason), d.message, d.chainPEM
	c.log.Info("application decided", "ref", app.Ref, "id", app.RequestID, "state", d.state,
		"reason", d.reason, "message", d.message)
	c.cleanUp(ctx, app)
	return app.verdict(), nil
}

// reject is decide for a rejection.
func (c *Client) reject(ctx context.Context, app application, reason ca.Reason, message string) (ca.Status, error) {
	return c.decide(ctx, app, decision{state: stateRejected, reason: reason, message: message})
}

// cleanUp removes the values a decided application published, best effort: what cannot be
// removed now stays listed and is tried again at the next Status.
func (c *Client) cleanUp(ctx context.Context, app application) {
	var removed []published
	for _, p := range app.Published {
		if err := c.challenges.Remove(ctx, p.FQDN, p.Value); err != nil {
			c.log.Warn("DNS-01 value not removed; will retry", "ref", app.Ref, "fqdn", p.FQDN, "err", err)
			continue
		}
		removed = append(removed, p)
	}
	if len(removed) == 0 {
		return
	}
	if err := c.store.changePublished(ctx, app.Ref, nil, removed); err != nil {
		c.log.Warn("removal of DNS-01 values not recorded", "ref", app.Ref, "err", err)
	}
}

// Cancel implements ca.Client: the order's pending authorizations are deactivated (best effort:
// an unreachable CA lets them expire), the published values removed, and the application becomes
// CANCELLED (Status: Rejected, ReasonPolicy, "cancelled"). A decided or unknown application is
// left as it is.
func (c *Client) Cancel(ctx context.Context, ref string) error {
	unlock, err := c.refLocks.lock(ctx, ref)
	if err != nil {
		return err
	}
	defer unlock()
	app, err := c.store.application(ctx, ref)
	if errors.Is(err, errNoApplication) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("acme: cancel %s: %w", ref, err)
	}
	if app.State != statePending {
		return nil
	}
	if app.OrderURL != "" {
		c.deactivate(ctx, app)
	}
	if _, err := c.decide(ctx, app, decision{state: stateCancelled, reason: ca.ReasonPolicy, message: "cancelled"}); err != nil {
		return fmt.Errorf("acme: cancel %s: %w", ref, err)
	}
	return nil
}

// deactivate deactivates the order's pending authorizations, logging what fails.
func (c *Client) deactivate(ctx context.Context, app application) {
	ctx, cancel := context.WithTimeout(ctx, c.httpTimeout)
	defer cancel()
	core, err := c.getCore(ctx)
	if err != nil {
		c.log.Warn("authorizations not deactivated", "ref", app.Ref, "err", err)
		return
	}
	order, err := core.Orders.Get(ctx, app.OrderURL)
	if err != nil {
		c.log.Warn("authorizations not deactivated", "ref", app.Ref, "err", err)
		return
	}
	for _, u := range order.Authorizations {
		authz, err := core.Authorizations.Get(ctx, u)
		if err == nil && authz.Status == "pending" {
			err = core.Authorizations.Deactivate(ctx, u)
		}
		if err != nil {
			c.log.Warn("authorization not deactivated", "ref", app.Ref, "authz", u, "err", err)
		}
	}
}

// retryIn is the RetryAfter of a pending answer: the CA's when it sent one.
func (c *Client) retryIn(after time.Duration) time.Duration {
	if after > 0 {
		return after
	}
	return c.poll
}

// Instructions implements ca.Instructor: the delegation CNAMEs of a binding's names, as Submit
// gives them.
func (c *Client) Instructions(binding string, domains []string) []ca.DNSRecord {
	return instructions(c.zone, binding, domains)
}
