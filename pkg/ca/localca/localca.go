// Package localca is the built-in certificate authority: a ca.Client that issues real X.509
// certificates from a root and intermediate of its own, after really checking domain control over
// DNS. It lets the whole product run (and be tested) with no external CA, and it behaves like one:
// applications stay pending until the customer publishes a record, verdicts are final, errors
// mean only "try again".
//
// Decisions, in the order an application meets them:
//
//   - Keys. At its first start the CA makes an ECDSA P-384 root (25 years) and intermediate
//     (10 years) and a secret for validation values, stored in its own SQLite database with every
//     secret sealed by the master key (pkg/secrets); none is ever written in plain text or logged.
//     Reopening the database keeps them; a master key that does not open them is an error at Open.
//   - Submit checks policy at once (domain syntax, the CSR's signature, names and key); a request
//     that fails it is recorded as Rejected with ReasonPolicy, because submitting it again would
//     fail the same way. Submit is idempotent on Request.ID; a second Submit with the same ID gets
//     the first one's submission whatever else it carries.
//   - Instructions ask for one TXT record per base domain, _certhosting-validation.<base>, whose
//     value is derived from the CA's secret and Request.Binding (see instructions): the same for
//     every application of a bundle, so a record published once validates every renewal.
//   - Status does the verification, synchronously, when polled: it looks the records up at the
//     configured Resolver. A record seen with its value stays seen for that application. When all
//     are seen, OV and EV organizations are checked (OrganizationRule), then the domains' CAA
//     records (with a CAAIdentity; RFC 8659, caa.go has the rules), at each issuance, renewals
//     included, and the certificate is issued.
//   - Only an answer is evidence (package dnscheck). A record is rejected with ReasonDNS, naming
//     the records, once the resolver has answered that it is absent (or holds other values) for
//     DNSTimeout in all: the application's dnscheck.Clock, stored with it. A lookup that fails
//     (timeout, network error, SERVFAIL, REFUSED) stops that clock and keeps the application
//     pending however long it lasts, polled again with backoff; so does a failed CAA lookup. CAA
//     records that answer and name other CAs only reject with ReasonCAA at once. Failing lookups
//     are logged at WARN once a minute with how many applications they hold up (FailureLog).
//   - An issued chain is the leaf then the intermediate (the root is what clients trust: RootPEM,
//     Roots). The leaf's not_after is the earliest of the requested end, now + MaxValidity and the
//     intermediate's end. A decided application answers the same on every poll.
//   - Cancel makes a pending application CANCELLED; Status then answers Rejected, ReasonPolicy,
//     message "cancelled" (the contract has no state for it, and it is the applicant's decision,
//     not a verification failure).
//   - An unknown ref gets a verdict too (Rejected, ReasonPolicy), not an error: an error would be
//     retried forever, while the reference will never become known.
//
// Time comes from the injected clock only, so tests drive the DNS timeout and validity periods
// with a fake clock.
package localca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	"golang.org/x/sync/errgroup"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/dnscheck"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// Defaults of Config.
const (
	// DefaultMaxValidity is today's public maximum (CA/Browser Forum, since 2026-03-15).
	DefaultMaxValidity = 200 * 24 * time.Hour
	// DefaultDNSTimeout is how long the resolver must answer that an application's records are
	// absent before the application is rejected.
	DefaultDNSTimeout = time.Hour
	// DefaultDNSQueryTimeout bounds one DNS query.
	DefaultDNSQueryTimeout = dnscheck.DefaultQueryTimeout
	// DefaultDNSQueries bounds the queries in flight: what the renewal ticker put in flight when it
	// kept 32 applications in flight (a lookup at a time each, for one name). With 256 in flight
	// (TickerConfig.Concurrency) and no bound, the bursts of queries overflowed a DNS server's
	// receive buffer: queries went unanswered, and their applications waited for the query timeout
	// and a later poll.
	DefaultDNSQueries = 32
)

// DefaultCAAIdentity is the issuer domain name the binaries give the local CA for CAA records: a
// domain whose CAA records name it (`0 issue "certhosting.local"`), or that has none, may get
// certificates from it.
const DefaultCAAIdentity = "certhosting.local"

// DefaultRecheck is the poll interval suggested while an application's records are not there yet
// (never beyond the DNS timeout); after failed lookups the CA backs off from half of it
// (dnscheck.Clock.Next).
const DefaultRecheck = 10 * time.Second

// refKind prefixes application references: "lca_" and a ULID.
const refKind ids.Kind = "lca"

// Config configures Open.
type Config struct {
	// DBPath is the CA's own SQLite database (created if missing).
	DBPath string
	// Box seals the CA's private keys and secret in the database.
	Box *secrets.Box
	// Clock is the CA's time (default: the real clock).
	Clock clockwork.Clock
	// Resolver is the host:port of the DNS server the validation records are looked up at.
	Resolver string
	// MaxValidity caps a certificate's lifetime (default DefaultMaxValidity). A few minutes lets a
	// demo show renewals.
	MaxValidity time.Duration
	// DNSTimeout is how long the resolver must answer that an application's records are absent
	// before it is rejected with ReasonDNS (default DefaultDNSTimeout). Time during which lookups
	// fail does not count.
	DNSTimeout time.Duration
	// Recheck is how soon a pending application whose records are missing should be polled again
	// (default DefaultRecheck). A short value makes a demo or a test quick; real CAs wait longer.
	Recheck time.Duration
	// DNSQueryTimeout bounds each DNS query (default DefaultDNSQueryTimeout).
	DNSQueryTimeout time.Duration
	// DNSQueries bounds the CA's DNS queries in flight, all applications together (default
	// DefaultDNSQueries).
	DNSQueries int
	// OrganizationRule vets OV and EV organizations.
	OrganizationRule OrganizationRule
	// CAAIdentity is the issuer domain name CAA records must name for this CA to issue for a
	// domain that has CAA records (RFC 8659, see caa.go); empty skips the CAA check.
	CAAIdentity string
	// Logger receives applications' progress; nil discards it. Keys are never logged.
	Logger *slog.Logger
	// CRLURL is where the CA's CRL (CRL) is served, named as the CRL distribution point of every
	// certificate it issues; empty names none.
	CRLURL string
}

// CA is the local certificate authority. Its methods are safe for concurrent use.
type CA struct {
	store        *store
	db           *db.DB
	clk          clockwork.Clock
	resolver     dnscheck.Resolver
	txtLookups   *dnscheck.FailureLog
	caaLookups   *dnscheck.FailureLog
	maxValidity  time.Duration
	dnsTimeout   time.Duration
	recheck      time.Duration
	orgRule      OrganizationRule
	caaIdentity  string
	log          *slog.Logger
	root         *issuer
	intermediate *issuer
	roots        *x509.CertPool
	secret       []byte // derives validation values
	crlURL       string
}

var (
	_ ca.Client       = (*CA)(nil)
	_ ca.VerdictTimer = (*CA)(nil)
	_ ca.InProcess    = (*CA)(nil)
	_ ca.Revoker      = (*CA)(nil)
	_ ca.Instructor   = (*CA)(nil)
)

// Open opens (creating at the first start) the CA's database and keys.
func Open(ctx context.Context, cfg Config) (*CA, error) {
	switch {
	case cfg.DBPath == "":
		return nil, errors.New("localca: DBPath is required")
	case cfg.Box == nil:
		return nil, errors.New("localca: Box is required (the master key sealing the CA's keys)")
	case cfg.Resolver == "":
		return nil, errors.New("localca: Resolver is required (host:port of the DNS server to verify records at)")
	}
	c := &CA{
		clk:         cfg.Clock,
		resolver:    dnscheck.Resolver{Addr: cfg.Resolver, Timeout: cfg.DNSQueryTimeout},
		maxValidity: cfg.MaxValidity,
		dnsTimeout:  cfg.DNSTimeout,
		orgRule:     cfg.OrganizationRule,
		caaIdentity: strings.ToLower(strings.TrimSuffix(cfg.CAAIdentity, ".")),
		log:         cfg.Logger,
		crlURL:      cfg.CRLURL,
	}
	if c.clk == nil {
		c.clk = clockwork.NewRealClock()
	}
	if c.maxValidity <= 0 {
		c.maxValidity = DefaultMaxValidity
	}
	if c.dnsTimeout <= 0 {
		c.dnsTimeout = DefaultDNSTimeout
	}
	if c.recheck = cfg.Recheck; c.recheck <= 0 {
		c.recheck = DefaultRecheck
	}
	queries := cfg.DNSQueries
	if queries <= 0 {
		queries = DefaultDNSQueries
	}
	c.resolver.Slots = make(chan struct{}, queries)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.txtLookups = &dnscheck.FailureLog{Log: c.log, Clock: c.clk, What: "validation TXT records", Resolver: cfg.Resolver}
	c.caaLookups = &dnscheck.FailureLog{Log: c.log, Clock: c.clk, What: "CAA records", Resolver: cfg.Resolver}
	d, err := db.Open(ctx, cfg.DBPath, db.Options{Migrations: Migrations(), Logger: c.log, MaxConns: db.SmallPoolConns})
	if err != nil {
		return nil, fmt.Errorf("localca: %w", err)
	}
	c.db, c.store = d, &store{db: d}
	if err := c.loadKeys(ctx, cfg.Box); err != nil {
		d.Close()
		return nil, fmt.Errorf("localca: %w", err)
	}
	c.roots = x509.NewCertPool()
	c.roots.AddCert(c.root.cert)
	c.log.Info("local CA ready", "db", db.Redacted(cfg.DBPath), "root", c.root.cert.Subject.CommonName,
		"intermediate_not_after", c.intermediate.cert.NotAfter, "resolver", cfg.Resolver,
		"max_validity", c.maxValidity, "dns_timeout", c.dnsTimeout, "caa_identity", c.caaIdentity)
	return c, nil
}

// Names of the stored keys; each is also the context its ciphertext is bound to.
const (
	keyRoot         = "root"
	keyIntermediate = "intermediate"
	keyValidation   = "validation-hmac"
)

func sealContext(name string) string { return "localca/" + name }

// loadKeys reads the CA's keys, making them first if the database has none.
func (c *CA) loadKeys(ctx context.Context, box *secrets.Box) error {
	issuers, secretRows, err := c.store.keys(ctx)
	if err != nil {
		return err
	}
	if len(issuers) == 0 {
		if err := c.initKeys(ctx, box); err != nil {
			return err
		}
		// Read back what was stored: ours, or those of a process that opened the database at the
		// same moment and stored first.
		if issuers, secretRows, err = c.store.keys(ctx); err != nil {
			return err
		}
	}
	if c.root, err = openIssuer(box, issuers, keyRoot); err != nil {
		return err
	}
	if c.intermediate, err = openIssuer(box, issuers, keyIntermediate); err != nil {
		return err
	}
	if err := c.intermediate.cert.CheckSignatureFrom(c.root.cert); err != nil {
		return fmt.Errorf("stored intermediate is not signed by the stored root: %w", err)
	}
	row, ok := secretRows[keyValidation]
	if !ok {
		return errors.New("database has CA keys but no validation secret")
	}
	if c.secret, err = box.Open(row.SealedValue, sealContext(keyValidation)); err != nil {
		return fmt.Errorf("validation secret: %w", err)
	}
	return nil
}

// initKeys makes and stores a new root, intermediate and validation secret.
func (c *CA) initKeys(ctx context.Context, box *secrets.Box) error {
	now := c.clk.Now()
	root, intermediate, err := newHierarchy(now)
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	var issuers []issuerRow
	for name, is := range map[string]*issuer{keyRoot: root, keyIntermediate: intermediate} {
		der, err := x509.MarshalPKCS8PrivateKey(is.key)
		if err != nil {
			return err
		}
		issuers = append(issuers, issuerRow{Name: name, CertificatePEM: string(is.pem),
			SealedKey: box.Seal(der, sealContext(name)), CreateTime: db.Micros(now)})
	}
	secrets := []secretRow{{Name: keyValidation, SealedValue: box.Seal(secret, sealContext(keyValidation)), CreateTime: db.Micros(now)}}
	if err := c.store.initKeys(ctx, issuers, secrets); err != nil {
		return err
	}
	c.log.Info("local CA created its root and intermediate", "root", root.cert.Subject.CommonName,
		"root_not_after", root.cert.NotAfter, "intermediate_not_after", intermediate.cert.NotAfter)
	return nil
}

func openIssuer(box *secrets.Box, rows map[string]issuerRow, name string) (*issuer, error) {
	row, ok := rows[name]
	if !ok {
		return nil, fmt.Errorf("database has no %s certificate", name)
	}
	der, err := box.Open(row.SealedKey, sealContext(name))
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", name, err)
	}
	is, err := parseIssuer([]byte(row.CertificatePEM), der)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return is, nil
}

// Close closes the database.
func (c *CA) Close() error { return c.db.Close() }

// RootPEM is the root certificate, PEM-encoded: what a client trusts to verify the CA's chains.
func (c *CA) RootPEM() []byte { return slices.Clone(c.root.pem) }

// Roots is a pool holding the root certificate, for x509.VerifyOptions.Roots.
func (c *CA) Roots() *x509.CertPool { return c.roots.Clone() }

// IntermediatePEM is the intermediate certificate, PEM-encoded (it ends every issued chain).
func (c *CA) IntermediatePEM() []byte { return slices.Clone(c.intermediate.pem) }

// Submit implements ca.Client. The only errors are failures to store the application (and an empty
// Request.ID, a caller's bug that no verdict fits); everything wrong with the request itself is a
// verdict Status returns.
func (c *CA) Submit(ctx context.Context, req ca.Request) (ca.Submission, error) {
	if req.ID == "" {
		return ca.Submission{}, errors.New("localca: Request.ID is required (it is the idempotency key)")
	}
	now := c.clk.Now()
	domains, problem := checkRequest(req, now)
	app := application{
		Ref: ids.New(refKind, now), RequestID: req.ID, Domains: domains, CSR: req.CSR,
		Validation: req.Validation, Organization: req.Organization, Contact: req.Contact,
		RequestedNotAfter: req.NotAfter, RequestedLifetime: req.Lifetime, State: statePending, CreateTime: now,
	}
	if problem != "" {
		app.Domains = req.Domains
		app.State, app.Reason, app.Message, app.DecideTime = stateRejected, string(ca.ReasonPolicy), problem, now
	} else {
		// Without a binding, an application is bound to itself: its record validates nothing else.
		binding := req.Binding
		if binding == "" {
			binding = "application:" + req.ID
		}
		app.Instructions = instructions(c.secret, binding, domains)
	}
	stored, err := c.store.createApplication(ctx, app)
	if err != nil {
		return ca.Submission{}, fmt.Errorf("localca: submit %s: %w", req.ID, err)
	}
	if stored.Ref == app.Ref {
		c.log.Info("application submitted", "ref", app.Ref, "id", req.ID, "domains", app.Domains,
			"validation", req.Validation, "state", app.State, "message", app.Message)
	}
	return ca.Submission{Ref: stored.Ref, Instructions: stored.Instructions}, nil
}

// Status implements ca.Client. Polling a pending application is what verifies it: see the
// package comment.
func (c *CA) Status(ctx context.Context, ref string) (ca.Status, error) {
	app, err := c.store.application(ctx, ref)
	if errors.Is(err, errNoApplication) {
		return ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: fmt.Sprintf("unknown application %q", ref)}, nil
	}
	if err != nil {
		return ca.Status{}, fmt.Errorf("localca: status %s: %w", ref, err)
	}
	if app.State != statePending {
		return app.verdict(), nil
	}
	st, err := c.verify(ctx, app)
	if err != nil {
		return ca.Status{}, fmt.Errorf("localca: status %s: %w", ref, err)
	}
	return st, nil
}

// InProcess implements ca.InProcess: the CA signs in the calling process.
func (c *CA) InProcess() {}

// VerdictTimeout implements ca.VerdictTimer: the DNS timeout is the only wait that ends in a
// verdict.
func (c *CA) VerdictTimeout() time.Duration { return c.dnsTimeout }

// recordCheck is what the lookup of one validation record showed.
type recordCheck struct {
	record ca.DNSRecord
	dnscheck.Result
}

// check looks up every record, a few at a time.
func (c *CA) check(ctx context.Context, records []ca.DNSRecord) []recordCheck {
	out := make([]recordCheck, len(records))
	var g errgroup.Group
	g.SetLimit(8)
	for i, rec := range records {
		g.Go(func() error {
			out[i] = recordCheck{record: rec, Result: c.resolver.TXT(ctx, rec.Name, rec.Value)}
			return nil
		})
	}
	_ = g.Wait()
	return out
}

// verify looks up the records of a pending application not seen yet and moves it on: issued,
// rejected, or still pending.
func (c *CA) verify(ctx context.Context, app application) (ca.Status, error) {
	seen, err := c.store.validated(ctx, app.Ref)
	if err != nil {
		return ca.Status{}, err
	}
	var todo []ca.DNSRecord
	for _, rec := range app.Instructions {
		if !slices.Contains(seen, rec.Name) {
			todo = append(todo, rec)
		}
	}
	checks := c.check(ctx, todo)
	if err := ctx.Err(); err != nil {
		return ca.Status{}, err // lookups cut short by the caller say nothing about the records
	}
	now := c.clk.Now()
	var found []string
	var missing []recordCheck
	var failure error
	for _, ch := range checks {
		switch ch.Outcome {
		case dnscheck.Found:
			found = append(found, ch.record.Name)
		case dnscheck.Failed:
			missing = append(missing, ch)
			if failure == nil {
				failure = ch.Err
			}
		default:
			missing = append(missing, ch)
		}
	}
	if len(found) > 0 {
		if err := c.store.addValidations(ctx, app.Ref, found, now); err != nil {
			return ca.Status{}, err
		}
	}
	if len(missing) == 0 {
		c.txtLookups.Answered(app.Ref)
		return c.complete(ctx, app, now)
	}
	clock, err := dnscheck.Observe(ctx, c.db, "applications", app.Ref, failure == nil, now)
	if err != nil {
		return ca.Status{}, err
	}
	retry := clock.Next(c.recheck, c.dnsTimeout)
	if failure != nil {
		c.txtLookups.Failed(app.Ref, failure)
		c.log.Debug("validation record lookup failed; no verdict", "ref", app.Ref, "err", failure,
			"consecutive_failures", clock.Failures, "absent_for", clock.AbsentFor, "retry_after", retry)
		return ca.Status{State: ca.Pending, RetryAfter: retry}, nil
	}
	c.txtLookups.Answered(app.Ref)
	if clock.AbsentFor >= c.dnsTimeout {
		return c.decide(ctx, app, ca.ReasonDNS, dnsMessage(missing, c.dnsTimeout), now)
	}
	for _, m := range missing {
		c.log.Debug("validation record not found yet", "ref", app.Ref, "record", m.record.Name,
			"seen", m.Seen, "absent_for", clock.AbsentFor, "retry_after", retry)
	}
	return ca.Status{State: ca.Pending, RetryAfter: retry}, nil
}

// dnsMessage is the rejection message for records the resolver kept answering without: each
// record's name, type and expected value, and what the last lookup found instead.
func dnsMessage(missing []recordCheck, timeout time.Duration) string {
	parts := make([]string, 0, len(missing))
	for _, m := range missing {
		parts = append(parts, fmt.Sprintf("%s %s %q: %s", m.record.Name, m.record.Type, m.record.Value, m.Seen))
	}
	return fmt.Sprintf("domain control not verified: the DNS answered for %s without the record: %s", timeout, strings.Join(parts, "; "))
}

// complete finishes an application whose records were all seen: organization check, CAA check,
// then issuance.
func (c *CA) complete(ctx context.Context, app application, now time.Time) (ca.Status, error) {
	if app.Validation != "DV" {
		if p := c.orgRule.Check(app.Organization); p != "" {
			return c.decide(ctx, app, ca.ReasonOrganization, app.Validation+" validation: "+p, now)
		}
	}
	if c.caaIdentity != "" {
		problem, err := checkCAA(ctx, c.resolver, c.caaIdentity, app.Domains)
		if ctx.Err() != nil {
			return ca.Status{}, ctx.Err()
		}
		if err != nil {
			// No answer, no verdict: pending, however long it lasts (caa.go says why).
			clock, oerr := dnscheck.Observe(ctx, c.db, "applications", app.Ref, false, now)
			if oerr != nil {
				return ca.Status{}, oerr
			}
			c.caaLookups.Failed(app.Ref, err)
			retry := clock.Next(c.recheck, c.dnsTimeout)
			c.log.Debug("CAA lookup failed; no verdict", "ref", app.Ref, "err", err, "retry_after", retry)
			return ca.Status{State: ca.Pending, RetryAfter: retry}, nil
		}
		c.caaLookups.Answered(app.Ref)
		if problem != "" {
			return c.decide(ctx, app, ca.ReasonCAA, problem, now)
		}
	}
	leaf, certPEM, problem, err := c.issueLeaf(app, now)
	if err != nil {
		return ca.Status{}, err
	}
	if problem != "" {
		return c.decide(ctx, app, ca.ReasonPolicy, problem, now)
	}
	chain := string(certPEM) + string(c.intermediate.pem)
	serial := fmt.Sprintf("%032x", leaf.SerialNumber)
	err = c.store.recordIssued(ctx, app.Ref, issued{Serial: serial, CertPEM: string(certPEM), ChainPEM: chain,
		NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}, now)
	if errors.Is(err, db.ErrConflict) {
		return c.current(ctx, app.Ref) // decided meanwhile; this certificate never leaves
	}
	if err != nil {
		return ca.Status{}, err
	}
	c.log.Info("certificate issued", "ref", app.Ref, "id", app.RequestID, "serial", serial,
		"domains", app.Domains, "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
	return ca.Status{State: ca.Issued, ChainPEM: []byte(chain)}, nil
}

// decide rejects a pending application.
func (c *CA) decide(ctx context.Context, app application, reason ca.Reason, message string, now time.Time) (ca.Status, error) {
	err := c.store.decide(ctx, app.Ref, stateRejected, reason, message, now)
	if errors.Is(err, db.ErrConflict) {
		return c.current(ctx, app.Ref)
	}
	if err != nil {
		return ca.Status{}, err
	}
	c.log.Info("application rejected", "ref", app.Ref, "id", app.RequestID, "reason", reason, "message", message)
	return ca.Status{State: ca.Rejected, Reason: reason, Message: message}, nil
}

// current is the stored verdict of an application another call decided.
func (c *CA) current(ctx context.Context, ref string) (ca.Status, error) {
	app, err := c.store.application(ctx, ref)
	if err != nil {
		return ca.Status{}, err
	}
	return app.verdict(), nil
}

// verdict is a decided application's answer to Status.
func (a application) verdict() ca.Status {
	if a.State == stateIssued {
		return ca.Status{State: ca.Issued, ChainPEM: []byte(a.ChainPEM)}
	}
	return ca.Status{State: ca.Rejected, Reason: ca.Reason(a.Reason), Message: a.Message}
}

// Cancel implements ca.Client: a pending application becomes CANCELLED (Status: Rejected,
// ReasonPolicy, "cancelled"); a decided or unknown one is left as it is.
func (c *CA) Cancel(ctx context.Context, ref string) error {
	err := c.store.decide(ctx, ref, stateCancelled, ca.ReasonPolicy, "cancelled", c.clk.Now())
	if errors.Is(err, db.ErrConflict) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localca: cancel %s: %w", ref, err)
	}
	c.log.Info("application cancelled", "ref", ref)
	return nil
}

// Instructions implements ca.Instructor: the TXT records of a binding's names, as Submit gives
// them.
func (c *CA) Instructions(binding string, domains []string) []ca.DNSRecord {
	return instructions(c.secret, binding, domains)
}
