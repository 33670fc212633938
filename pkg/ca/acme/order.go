package acme

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
	"github.com/certhosting/certhosting/pkg/db"
)

// advance moves a pending application one step on at the CA: it creates the order if there is
// none, then acts on the order's status. Errors are transient; verdicts are recorded.
func (c *Client) advance(ctx context.Context, app application) (ca.Status, error) {
	core, err := c.getCore(ctx)
	if err != nil {
		return ca.Status{}, err
	}
	var order *acme.Order
	if app.OrderURL == "" {
		var verdict *ca.Status
		if app, order, verdict, err = c.createOrder(ctx, core, app); err != nil || verdict != nil {
			return deref(verdict), err
		}
	}
	after0 := c.poll
	if order == nil {
		var o acme.ExtendedOrder
		after, err := c.call(ctx, func(ctx context.Context) (err error) {
			o, err = core.Orders.Get(ctx, app.OrderURL)
			return err
		})
		if err != nil {
			if orderGone(err) {
				return c.reorder(ctx, app, err)
			}
			// A failed poll is never a verdict: an order the CA cannot show now (another
			// account's, the CA down) says nothing final about the application.
			return ca.Status{}, c.transient(ctx, "poll order", err, after)
		}
		order, after0 = &o.Order, c.retryIn(after)
	}

	switch order.Status {
	case acme.StatusPending:
		after, verdict, err := c.solve(ctx, core, app, order.Authorizations)
		if err != nil || verdict != nil {
			return deref(verdict), err
		}
		return ca.Status{State: ca.Pending, RetryAfter: max(after0, after)}, nil
	case acme.StatusReady:
		return c.finalize(ctx, core, app, order)
	case acme.StatusProcessing:
		return ca.Status{State: ca.Pending, RetryAfter: after0}, nil
	case acme.StatusValid:
		return c.download(ctx, core, app, order)
	case acme.StatusInvalid:
		return c.rejectInvalid(ctx, core, app, order)
	}
	return ca.Status{}, fmt.Errorf("order %s has status %q", app.OrderURL, order.Status)
}

// orderGone reports whether polling an order failed because the CA does not have it (any problem
// with HTTP status 404, other than about the account): it expired and was deleted while the
// application waited (a CA outage of days), or the CA lost its state. Nothing is final about the
// application then, but polling that URL can never succeed either.
func orderGone(err error) bool {
	if p := problemOf(err); p != nil {
		return p.HTTPStatus == http.StatusNotFound && p.Type != acme.AccountDoesNotExistErrorType
	}
	se, ok := errors.AsType[*statusError](err)
	return ok && se.code == http.StatusNotFound
}

// reorder carries an application whose order the CA no longer has on with a new order, as if the
// first had never been created: without it, the application would poll the gone order forever
// and nobody could move it on (it is neither decided nor retryable). The values published for the
// old order's challenges stay in the published list and are removed with the verdict as usual.
// After maxReorders new orders it stops (a transient error on every poll, logged at error level;
// a renewal stuck so escalates as late): 404s that persist come from something other than the CA.
func (c *Client) reorder(ctx context.Context, app application, pollErr error) (ca.Status, error) {
	err := c.store.dropOrder(ctx, app.Ref, app.OrderURL)
	if errors.Is(err, errTooManyReorders) {
		c.log.Error("the CA keeps answering that the application's order does not exist; not ordering again",
			"ref", app.Ref, "order", app.OrderURL, "err", pollErr)
		return ca.Status{}, fmt.Errorf("acme: poll order of %s: %w, and %w", app.Ref, pollErr, err)
	}
	if errors.Is(err, db.ErrConflict) {
		// A concurrent call dropped it or decided the application first: the next poll sees that.
		return ca.Status{}, fmt.Errorf("acme: order %s of %s changed while being replaced", app.OrderURL, app.Ref)
	}
	if err != nil {
		return ca.Status{}, err
	}
	c.log.Warn("the CA no longer has the order; ordering again", "ref", app.Ref, "order", app.OrderURL, "err", pollErr)
	app.OrderURL = ""
	return c.advance(ctx, app)
}

func deref(st *ca.Status) ca.Status {
	if st == nil {
		return ca.Status{}
	}
	return *st
}

// createOrder creates the application's order and records its URL. A final refusal is recorded
// as the verdict. When a concurrent call created an order first, that one is kept (and ours is
// left to expire at the CA).
func (c *Client) createOrder(ctx context.Context, core *api.Core, app application) (application, *acme.Order, *ca.Status, error) {
	opts := &api.OrderOptions{Profile: c.profile, NotAfter: app.NotAfter, ReplacesCertID: app.Replaces}
	order, after, err := c.newOrder(ctx, core, app.Domains, opts)
	if err != nil && opts.ReplacesCertID != "" && replacesRefused(err) {
		// lego already retries an alreadyReplaced refusal without replaces; anything else the CA
		// says about an order naming a certificate to replace gets one more try without it too.
		c.log.Warn("order refused with replaces; ordering without it", "ref", app.Ref, "replaces", app.Replaces, "err", err)
		opts.ReplacesCertID = ""
		order, after, err = c.newOrder(ctx, core, app.Domains, opts)
	}
	if err != nil {
		if p := problemOf(err); p != nil {
			if reason, final := classifyRequest(p); final {
				st, err := c.reject(ctx, app, reason, "new order: "+problemMessage(p))
				return app, nil, &st, err
			}
		}
		return app, nil, nil, c.transient(ctx, "new order", err, after)
	}
	if order.Location == "" {
		return app, nil, nil, errors.New("new order: the CA sent no order URL")
	}
	err = c.store.setOrder(ctx, app.Ref, order.Location)
	if errors.Is(err, db.ErrConflict) {
		cur, err := c.store.application(ctx, app.Ref)
		if err != nil {
			return app, nil, nil, err
		}
		if cur.State != statePending {
			st := cur.verdict()
			return cur, nil, &st, nil
		}
		return cur, nil, nil, nil // the other call's order: advance polls it
	}
	if err != nil {
		return app, nil, nil, err
	}
	app.OrderURL = order.Location
	c.log.Info("order created", "ref", app.Ref, "order", order.Location, "status", order.Status,
		"replaces", order.Replaces, "profile", order.Profile)
	return app, &order.Order, nil, nil
}

func (c *Client) newOrder(ctx context.Context, core *api.Core, domains []string, opts *api.OrderOptions) (acme.ExtendedOrder, time.Duration, error) {
	var order acme.ExtendedOrder
	after, err := c.call(ctx, func(ctx context.Context) (err error) {
		order, err = core.Orders.New(ctx, domains, opts)
		return err
	})
	return order, after, err
}

// replacesRefused reports whether a new-order refusal may be about replaces: any problem the CA
// sent except a rate limit. If the refusal had nothing to do with replaces, the retry without it
// fails the same way and is classified then.
func replacesRefused(err error) bool {
	p := problemOf(err)
	return p != nil && p.Type != acme.RateLimitedErrorType
}

// solve publishes the value of every pending dns-01 challenge of the order at its delegation
// target and accepts the challenge. Values are recorded before they are published, so they are
// removed even if this call dies half-way. It returns the longest Retry-After the CA sent.
func (c *Client) solve(ctx context.Context, core *api.Core, app application, authzURLs []string) (time.Duration, *ca.Status, error) {
	var longest time.Duration
	var wait delegationWait
	for _, u := range authzURLs {
		var authz acme.Authorization
		after, err := c.call(ctx, func(ctx context.Context) (err error) {
			authz, err = core.Authorizations.Get(ctx, u)
			return err
		})
		if err != nil {
			return 0, nil, c.transient(ctx, "get authorization", err, after)
		}
		longest = max(longest, after)
		if authz.Status != acme.StatusPending {
			continue // valid (done or reused), or failed: the order's status tells
		}
		chlg, ok := findDNS01(authz)
		if !ok {
			st, err := c.reject(ctx, app, ca.ReasonPolicy,
				fmt.Sprintf("the CA offers no dns-01 challenge for %s, and this client validates only through DNS delegation", authz.Identifier.Value))
			return 0, &st, err
		}
		if chlg.Status != acme.StatusPending {
			continue // accepted already: the CA is validating
		}
		base := baseDomain(authz.Identifier.Value)
		fqdn := target(c.zone, app.Binding, base)
		if res := c.delegation(ctx, base, fqdn); res.Outcome != dnscheck.Found {
			wait.add(base, fqdn, res) // not accepted yet: asked again at the next poll
			continue
		}
		keyAuth, err := core.GetKeyAuthorization(chlg.Token)
		if err != nil {
			return 0, nil, fmt.Errorf("key authorization: %w", err)
		}
		p := published{FQDN: fqdn, Value: dns01Value(keyAuth)}
		if err := c.store.changePublished(ctx, app.Ref, []published{p}, nil); err != nil {
			return 0, nil, err
		}
		if err := c.challenges.Publish(ctx, p.FQDN, p.Value); err != nil {
			return 0, nil, fmt.Errorf("publish the DNS-01 value of %s at %s: %w", authz.Identifier.Value, p.FQDN, err)
		}
		var accepted acme.ExtendedChallenge
		after, err = c.call(ctx, func(ctx context.Context) (err error) {
			accepted, err = core.Challenges.New(ctx, chlg.URL)
			return err
		})
		if err != nil {
			return 0, nil, c.transient(ctx, "accept challenge", err, after)
		}
		longest = max(longest, after, accepted.RetryAfter)
		c.log.Info("dns-01 challenge accepted", "ref", app.Ref, "domain", authz.Identifier.Value, "target", p.FQDN)
	}
	if ctx.Err() != nil {
		return 0, nil, ctx.Err() // lookups cut short by the caller say nothing about the CNAMEs
	}
	if wait.waiting() {
		retry, reject, err := c.settle(ctx, app, wait)
		if reject != nil || err != nil {
			return 0, reject, err
		}
		longest = max(longest, retry)
	}
	return longest, nil, nil
}

func findDNS01(authz acme.Authorization) (acme.Challenge, bool) {
	for _, ch := range authz.Challenges {
		if ch.Type == "dns-01" {
			return ch, true
		}
	}
	return acme.Challenge{}, false
}

// dns01Value is the TXT value of a dns-01 challenge: the base64url SHA-256 digest of the key
// authorization (RFC 8555 §8.4). lego's dns01.GetChallengeInfo computes the same, but also looks
// up CNAMEs through a process-wide resolver, which this client must not do (it knows the target).
func dns01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// finalize sends the stored CSR. A CA that issues at once answers valid, and the chain is
// downloaded in the same call.
func (c *Client) finalize(ctx context.Context, core *api.Core, app application, order *acme.Order) (ca.Status, error) {
	var o acme.ExtendedOrder
	after, err := c.call(ctx, func(ctx context.Context) (err error) {
		o, err = core.Orders.UpdateForCSR(ctx, order.Finalize, app.CSR)
		return err
	})
	if err != nil {
		if p := problemOf(err); p != nil {
			if reason, final := classifyRequest(p); final {
				return c.reject(ctx, app, reason, "finalize: "+problemMessage(p))
			}
		}
		// lego reports an order that turned invalid without its problem; the next poll sees the
		// order invalid and finds the reason in its authorizations.
		return ca.Status{}, c.transient(ctx, "finalize order", err, after)
	}
	c.log.Info("order finalized", "ref", app.Ref, "status", o.Status)
	if o.Status == acme.StatusValid && o.Certificate != "" {
		return c.download(ctx, core, app, &o.Order)
	}
	return ca.Status{State: ca.Pending, RetryAfter: c.retryIn(after)}, nil
}

// download fetches the issued chain (leaf first, as the CA serves it) and records the issuance.
func (c *Client) download(ctx context.Context, core *api.Core, app application, order *acme.Order) (ca.Status, error) {
	var raw *acme.RawCertificate
	after, err := c.call(ctx, func(ctx context.Context) (err error) {
		raw, err = core.Certificates.Get(ctx, order.Certificate, true)
		return err
	})
	if err != nil {
		return ca.Status{}, c.transient(ctx, "download certificate", err, after)
	}
	leaf, err := firstCertificate(raw.Cert)
	if err != nil {
		return ca.Status{}, fmt.Errorf("download certificate %s: %w", order.Certificate, err)
	}
	c.log.Info("certificate issued", "ref", app.Ref, "serial", fmt.Sprintf("%x", leaf.SerialNumber),
		"names", leaf.DNSNames, "not_after", leaf.NotAfter)
	st, err := c.decide(ctx, app, decision{state: stateIssued, chainPEM: string(raw.Cert)})
	if err == nil && c.relinquish {
		c.relinquishAuthorizations(ctx, core, app, order.Authorizations)
	}
	return st, err
}

// relinquishAuthorizations deactivates an issued order's authorizations (see
// Config.RelinquishAuthorizations). A failure is logged: the authorization then expires at the CA.
func (c *Client) relinquishAuthorizations(ctx context.Context, core *api.Core, app application, authzURLs []string) {
	for _, u := range authzURLs {
		if _, err := c.call(ctx, func(ctx context.Context) error { return core.Authorizations.Deactivate(ctx, u) }); err != nil {
			c.log.Warn("authorization not relinquished; it stays valid until it expires at the CA", "ref", app.Ref, "authz", u, "err", err)
		}
	}
}

// rejectInvalid records the verdict of an invalid order: the problem of its failed challenge (the
// most specific account of what went wrong), else the order's own.
func (c *Client) rejectInvalid(ctx context.Context, core *api.Core, app application, order *acme.Order) (ca.Status, error) {
	var prob *acme.ProblemDetails
	var ident string
	for _, u := range order.Authorizations {
		var authz acme.Authorization
		after, err := c.call(ctx, func(ctx context.Context) (err error) {
			authz, err = core.Authorizations.Get(ctx, u)
			return err
		})
		if err != nil {
			return ca.Status{}, c.transient(ctx, "get authorization", err, after)
		}
		if authz.Status != acme.StatusInvalid {
			continue
		}
		for _, ch := range authz.Challenges {
			if ch.Error != nil {
				prob, ident = ch.Error, authz.Identifier.Value
				break
			}
		}
		if prob != nil {
			break
		}
	}
	if prob == nil {
		prob = order.Error
	}
	if prob == nil {
		return c.reject(ctx, app, ca.ReasonPolicy, "the CA marked the order invalid without saying why")
	}
	msg := problemMessage(prob)
	if ident != "" {
		msg = ident + ": " + msg
	}
	reason, final := classify(prob)
	if !final {
		// The order is dead whatever the cause; a transient cause (the CA's own failure during
		// validation) is still no statement about the customer's DNS.
		reason, msg = ca.ReasonPolicy, "the order failed at the CA: "+msg
	}
	return c.reject(ctx, app, reason, msg)
}
