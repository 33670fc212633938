// Package acme is a ca.Client for ACME certificate authorities (RFC 8555): Let's Encrypt, a
// commercial CA with External Account Binding, or Pebble in tests. It speaks the protocol through
// lego's low-level packages (lego/v5/acme/api), and validates domains with DNS-01 through DNS
// delegation, the way AWS ACM and Google Certificate Manager do.
//
// Decisions, in the order an application meets them:
//
//   - Delegation. The customer publishes one CNAME per domain, _acme-challenge.<domain> →
//     <label>.<Zone>, with a label derived from Request.Binding and the domain (see Delegation),
//     and never touches DNS again: every DNS-01 value for that domain, for this and every later
//     application of the subscription, is published by this client at the target, in a zone the
//     service serves (Config.Challenges), and removed once the order is decided.
//   - First applications. A CA validates an accepted challenge once, right away, and the customer
//     publishes the CNAME only after Submit returned it. With CNAMEResolver set, a challenge is
//     accepted only once the CNAME is visible there; an application is rejected with ReasonDNS
//     once the resolver has answered for CNAMETimeout in all that the CNAME is missing (failed
//     lookups never count: precheck.go). Without it, challenges are accepted at once, which
//     suits callers that know the CNAME is in place (renewals, tests).
//   - Account. The account key (ECDSA P-256) is made once per directory URL and kept in this
//     client's own SQLite database, sealed with the master key (pkg/secrets); the account URL the
//     CA gives it is kept beside it. Registration happens at the first call that needs the CA,
//     not at Open, so the service starts while the CA is down. A CA that says it no longer knows
//     the account (accountDoesNotExist, e.g. a restarted Pebble) gets the same key registered again
//     at the next call. A CA that requires External Account Binding while none is configured is an
//     error naming Config.EAB: the operator's to fix, never a verdict on an application.
//   - Submit is idempotent on Request.ID: the application is stored first (request id, domains,
//     CSR, instructions), then the order is created, its challenges' values published and the
//     challenges accepted. It does not wait for validation. When it fails half-way (the CA
//     unreachable), the next Submit or Status carries on from the stored state; a crash between
//     creating an order and storing its URL leaves an order at the CA that simply expires.
//   - Renewals name the certificate they replace (RFC 9773 replaces, the ARI certificate id of
//     Request.Replaces' leaf). A CA that refuses the order because of it (alreadyReplaced,
//     malformed, or anything but a rate limit) gets the same order once more without it, because
//     a renewal must never stall on a hint.
//   - Request.NotAfter is not sent unless SendNotAfter is set: most CAs (Let's Encrypt, Pebble's
//     profiles) decide the lifetime themselves and some refuse the field.
//   - Status polls the order and moves it on: pending → the challenges are (re)published and
//     accepted if they are not yet; ready → finalized with the stored CSR; valid → the chain is
//     downloaded (leaf first) and Issued; invalid → Rejected with the reason of the failed
//     challenge's problem. Pending answers carry the CA's Retry-After when it sent one, else
//     PollInterval. A decided application answers the same on every poll.
//   - With RelinquishAuthorizations, an issued order's authorizations are deactivated, so the
//     next order of the domain is validated afresh through the delegation (off by default: see
//     Config.RelinquishAuthorizations for what it costs).
//   - Problems are mapped by one table (see problemReasons): verdicts for what asking again
//     cannot change, errors for everything else, wrapped in *ca.RetryAfterError when the CA said
//     when to come back. A final refusal at Submit (rejectedIdentifier at new-order) is recorded
//     and returned by Status, never repeated as an error.
//   - ACME validates domains only: an OV or EV request is rejected at once (ReasonPolicy).
//   - An unknown ref gets a verdict (Rejected, ReasonPolicy), as in the local CA: an error would
//     be retried forever.
//
// Every network call takes the caller's ctx, and the HTTP client bounds every request
// (Config.HTTPTimeout) even where lego does not pass a context (the directory fetch).
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// Defaults of Config.
const (
	// DefaultHTTPTimeout bounds one HTTP request to the CA.
	DefaultHTTPTimeout = 30 * time.Second
	// DefaultPollInterval is the RetryAfter of a pending application when the CA sent none.
	DefaultPollInterval = 3 * time.Second
)

// refKind prefixes application references: "acme_" and a ULID.
const refKind ids.Kind = "acme"

// userAgent is sent to the CA in front of lego's own.
const userAgent = "certhosting"

// Challenges publishes and removes DNS-01 values at the delegation targets, in the zone the
// service serves (a pkg/dnsserver MemorySource, a database-backed source, a DNS provider).
// Names are fully qualified, without the trailing dot. One name may hold several values at once
// (a wildcard and its base domain share a name; renewals overlap), so Publish adds a value and
// Remove removes that value only. Both must be idempotent: a value may be published again after a
// retry, and removed when it is already gone.
type Challenges interface {
	Publish(ctx context.Context, fqdn, value string) error
	Remove(ctx context.Context, fqdn, value string) error
}

// EAB is an External Account Binding (RFC 8555 §7.3.4), as commercial CAs hand it out.
type EAB struct {
	// KeyID is the CA's key identifier.
	KeyID string
	// HMACKey is the MAC key, base64url (padded or not).
	HMACKey string
}

// Config configures Open.
type Config struct {
	// DirectoryURL is the CA's ACME directory (https).
	DirectoryURL string
	// Email is the account's contact ("mailto:"); empty registers no contact.
	Email string
	// EAB binds the account to an account at the CA, for CAs that require it.
	EAB *EAB
	// RootCAs is a PEM bundle trusted for the directory's TLS, in addition to the system roots,
	// or instead of them with NoSystemRoots.
	RootCAs       []byte
	NoSystemRoots bool
	// Profile is the ACME profile to order (draft-ietf-acme-profiles); empty lets the CA choose.
	Profile string
	// SendNotAfter sends Request.NotAfter (or now + Request.Lifetime) as the order's notAfter.
	SendNotAfter bool
	// DBPath is the client's own SQLite database (created if missing).
	DBPath string
	// Box seals the account key in the database.
	Box *secrets.Box
	// Challenges publishes the DNS-01 values.
	Challenges Challenges
	// Zone is the delegation zone the customers' CNAMEs point into ("acme.certhosting.test").
	Zone string
	// Clock is the client's time (default: the real clock).
	Clock clockwork.Clock
	// HTTPTimeout bounds each HTTP request (default DefaultHTTPTimeout).
	HTTPTimeout time.Duration
	// PollInterval is the RetryAfter of a pending application when the CA sent none (default
	// DefaultPollInterval).
	PollInterval time.Duration
	// CNAMEResolver is the host:port of a DNS resolver. When set, a challenge is accepted only once
	// the customer's CNAME points at its target there (see precheck.go); empty accepts at once,
	// for callers that know the CNAME is in place.
	CNAMEResolver string
	// CNAMETimeout is how long, with a CNAMEResolver, the resolver must answer that an application's
	// CNAMEs are missing before it is rejected with ReasonDNS (default DefaultCNAMETimeout). Time
	// during which lookups fail does not count.
	CNAMETimeout time.Duration
	// RelinquishAuthorizations deactivates an order's authorizations once its certificate is
	// downloaded (RFC 8555 §7.5.2), best effort. The account then holds no standing authority over
	// a customer's domain (what a leaked account key could issue for), and every order is
	// validated afresh through the delegation whatever the CA's authorization reuse, so a customer
	// who removed the CNAME gets no further certificate. The cost: a request per domain and
	// issuance, and an order of the same account that reused one of these authorizations before it
	// was finalized fails at the CA (a verdict, ReasonPolicy).
	RelinquishAuthorizations bool
	// Logger receives applications' progress; nil discards it. Keys are never logged.
	Logger *slog.Logger
}

// Client is an ACME ca.Client. Its methods are safe for concurrent use.
type Client struct {
	dir           string
	email         string
	eab           *EAB
	profile       string
	sendNotAfter  bool
	challenges    Challenges
	zone          string
	clk           clockwork.Clock
	httpTimeout   time.Duration
	poll          time.Duration
	log           *slog.Logger
	cnameResolver string
	cnameTimeout  time.Duration
	cnameLookups  *dnscheck.FailureLog
	relinquish    bool
	transport     retryAfterTransport
	db            *db.DB
	store         *store
	key           crypto.Signer

	refLocks refLocks

	// sem guards core: one caller at a time fetches the directory and registers the account.
	sem  chan struct{}
	core *api.Core
}

var (
	_ ca.Client          = (*Client)(nil)
	_ ca.RenewalInformer = (*Client)(nil)
	_ ca.VerdictTimer    = (*Client)(nil)
)

// Open opens (creating at the first start) the client's database and account key. It does not
// contact the CA.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	c := &Client{
		dir: cfg.DirectoryURL, email: cfg.Email, eab: cfg.EAB, profile: cfg.Profile, sendNotAfter: cfg.SendNotAfter,
		challenges: cfg.Challenges, zone: normalizeDomain(cfg.Zone), clk: cfg.Clock, httpTimeout: cfg.HTTPTimeout,
		poll: cfg.PollInterval, log: cfg.Logger, sem: make(chan struct{}, 1),
		cnameResolver: cfg.CNAMEResolver, cnameTimeout: cfg.CNAMETimeout, relinquish: cfg.RelinquishAuthorizations,
	}
	if c.cnameTimeout <= 0 {
		c.cnameTimeout = DefaultCNAMETimeout
	}
	if c.clk == nil {
		c.clk = clockwork.NewRealClock()
	}
	if c.httpTimeout <= 0 {
		c.httpTimeout = DefaultHTTPTimeout
	}
	if c.poll <= 0 {
		c.poll = DefaultPollInterval
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.cnameLookups = &dnscheck.FailureLog{Log: c.log, Clock: c.clk, What: "delegation CNAMEs", Resolver: c.cnameResolver}
	t, err := newTransport(cfg.RootCAs, cfg.NoSystemRoots, c.httpTimeout)
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	c.transport = t
	d, err := db.Open(ctx, cfg.DBPath, db.Options{Migrations: Migrations(), Logger: c.log, MaxConns: db.SmallPoolConns})
	if err != nil {
		return nil, fmt.Errorf("acme: %w", err)
	}
	c.db, c.store = d, &store{db: d}
	if c.key, err = c.loadKey(ctx, cfg.Box); err != nil {
		d.Close()
		return nil, fmt.Errorf("acme: %w", err)
	}
	c.log.Info("ACME client ready", "directory", c.dir, "zone", c.zone, "profile", c.profile, "eab", c.eab != nil)
	return c, nil
}

func checkConfig(cfg Config) error {
	u, err := url.Parse(cfg.DirectoryURL)
	switch {
	case cfg.DirectoryURL == "" || err != nil || u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("DirectoryURL %q must be an https URL", cfg.DirectoryURL)
	case cfg.DBPath == "":
		return errors.New("DBPath is required")
	case cfg.Box == nil:
		return errors.New("Box is required (the master key sealing the account key)")
	case cfg.Challenges == nil:
		return errors.New("Challenges is required (it publishes the DNS-01 values in the delegation zone)")
	case strings.Trim(cfg.Zone, ".") == "" || !strings.Contains(strings.Trim(cfg.Zone, "."), "."):
		return fmt.Errorf("Zone %q must be a domain name (the delegation zone, e.g. acme.example.net)", cfg.Zone)
	case cfg.EAB != nil && (cfg.EAB.KeyID == "" || cfg.EAB.HMACKey == ""):
		return errors.New("EAB needs both KeyID and HMACKey")
	}
	return nil
}

// Close closes the database and idle connections.
func (c *Client) Close() error {
	c.transport.base.CloseIdleConnections()
	return c.db.Close()
}

// sealContext binds the sealed account key to its directory.
func sealContext(directoryURL string) string { return "acme/account/" + directoryURL }

// loadKey reads the directory's account key, making it first if there is none.
func (c *Client) loadKey(ctx context.Context, box *secrets.Box) (crypto.Signer, error) {
	row, err := c.store.account(ctx, c.dir)
	if errors.Is(err, sql.ErrNoRows) {
		key, kerr := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if kerr != nil {
			return nil, kerr
		}
		der, kerr := x509.MarshalPKCS8PrivateKey(key)
		if kerr != nil {
			return nil, kerr
		}
		if kerr := c.store.createAccount(ctx, accountRow{DirectoryURL: c.dir,
			SealedKey: box.Seal(der, sealContext(c.dir)), CreateTime: db.Micros(c.clk.Now())}); kerr != nil {
			return nil, kerr
		}
		// Read back what was stored: ours, or that of a process that stored first.
		row, err = c.store.account(ctx, c.dir)
	}
	if err != nil {
		return nil, err
	}
	der, err := box.Open(row.SealedKey, sealContext(c.dir))
	if err != nil {
		return nil, fmt.Errorf("account key: %w", err)
	}
	key, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("account key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("account key: %T is not a signer", key)
	}
	return signer, nil
}

// AccountURL is the account's URL at the CA, registering the account first if needed.
func (c *Client) AccountURL(ctx context.Context) (string, error) {
	core, err := c.getCore(ctx)
	if err != nil {
		return "", err
	}
	return core.GetKID(), nil
}

// getCore is the lego API client for the directory and account, made at the first call that
// needs it: the directory is fetched and the account registered unless it is stored.
func (c *Client) getCore(ctx context.Context) (*api.Core, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	if c.core != nil {
		return c.core, nil
	}
	row, err := c.store.account(ctx, c.dir)
	if err != nil {
		return nil, fmt.Errorf("acme: read account: %w", err)
	}
	core, err := withContext(ctx, func() (*api.Core, error) {
		// lego wraps the client's transport (and so changes the client): a fresh client each time.
		hc := &http.Client{Timeout: c.httpTimeout, Transport: c.transport}
		return api.New(hc, userAgent, c.dir, row.AccountURL.String, c.key)
	})
	if err != nil {
		return nil, fmt.Errorf("acme: directory %s: %w", c.dir, err)
	}
	if !row.AccountURL.Valid {
		if err := c.register(ctx, core); err != nil {
			return nil, err
		}
	}
	c.core = core
	return core, nil
}

// register creates the account (or finds the existing one of the same key) and stores its URL.
func (c *Client) register(ctx context.Context, core *api.Core) error {
	if core.GetDirectory().Meta.ExternalAccountRequired && c.eab == nil {
		return fmt.Errorf("acme: %s requires External Account Binding (directory meta.externalAccountRequired): "+
			"configure EAB with the key id and HMAC key the CA issued", c.dir)
	}
	req := acme.Account{TermsOfServiceAgreed: true}
	if c.email != "" {
		req.Contact = []string{"mailto:" + c.email}
	}
	var acct acme.ExtendedAccount
	after, err := c.call(ctx, func(ctx context.Context) (err error) {
		if c.eab != nil {
			acct, err = core.Accounts.NewEAB(ctx, req, c.eab.KeyID, c.eab.HMACKey)
		} else {
			acct, err = core.Accounts.New(ctx, req)
		}
		return err
	})
	if err != nil {
		if p := problemOf(err); p != nil && p.Type == acme.ExternalAccountRequiredErrorType {
			err = fmt.Errorf("the CA requires External Account Binding: configure EAB: %w", err)
		}
		return retryable(fmt.Errorf("acme: register account at %s: %w", c.dir, err), after)
	}
	if acct.Location == "" {
		return fmt.Errorf("acme: register account at %s: no account URL in the answer", c.dir)
	}
	if err := c.store.setAccountURL(ctx, c.dir, acct.Location, c.clk.Now()); err != nil {
		return fmt.Errorf("acme: store account: %w", err)
	}
	c.log.Info("ACME account registered", "directory", c.dir, "account", acct.Location, "eab", c.eab != nil)
	return nil
}

// transient is the error of a failed call to the CA: wrapped in *ca.RetryAfterError when the CA
// said when to come back. When the CA no longer knows the account, the account is forgotten, so
// the next call registers the key again.
func (c *Client) transient(ctx context.Context, op string, err error, after time.Duration) error {
	if p := problemOf(err); p != nil && p.Type == acme.AccountDoesNotExistErrorType {
		c.forgetAccount(ctx)
	}
	if rl, ok := errors.AsType[*acme.RateLimitedError](err); ok {
		after = max(after, rl.RetryAfter)
	}
	return retryable(fmt.Errorf("acme: %s: %w", op, err), after)
}

func retryable(err error, after time.Duration) error {
	if after > 0 {
		return &ca.RetryAfterError{After: after, Err: err}
	}
	return err
}

// forgetAccount drops the cached API client and the stored account URL.
func (c *Client) forgetAccount(ctx context.Context) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.sem }()
	if c.core == nil {
		return
	}
	kid := c.core.GetKID()
	c.core = nil
	if err := c.store.forgetAccountURL(ctx, c.dir, kid); err != nil {
		c.log.Warn("ACME account not forgotten", "account", kid, "err", err)
		return
	}
	c.log.Warn("the CA no longer knows the ACME account; it will be registered again", "account", kid)
}
