// Package store is the lifecycle service's SQL: bundles, certificate instances and their history.
// It speaks models; the server converts them to and from protos. State changes go through
// state.Check and are compare-and-set on the state checked.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the lifecycle database's schema migrations.
func Migrations() fs.FS { return db.MigrationsIn(migrationFiles) }

// SerialWritesTable is the table every write transaction locks first on PostgreSQL
// (db.Options.SerialWrites): event ids come from the counters row 'events' inside the writing
// transaction, and WatchEvents resumes after the last id a client saw, so writes that append
// events must commit in the order they took their ids. On SQLite the single writer does this.
const SerialWritesTable = "counters"

// DBOptions are the options the lifecycle database opens with: its migrations and serial writes.
func DBOptions() db.Options {
	return db.Options{Migrations: Migrations(), SerialWrites: SerialWritesTable}
}

// Bundle is one bundle row.
type Bundle struct {
	ID                string `db:"bundle_id"`
	AccountID         string `db:"account_id"`
	OrderID           string `db:"order_id"`
	ProductID         string `db:"product_id"`
	ValidationType    string `db:"validation_type"`
	DomainType        string `db:"domain_type"`
	DomainCount       int    `db:"domain_count"`
	Hosting           bool   `db:"hosting"`
	SubscriptionYears int    `db:"subscription_years"`
	CreateTime        int64  `db:"create_time"`

	T0                    sql.NullInt64  `db:"t0"`
	TemplateApplicationID sql.NullString `db:"template_application_id"`
	RenewalApplicationID  sql.NullString `db:"renewal_application_id"`
	HostingStatus         string         `db:"hosting_status"`
	HostingEndTime        sql.NullInt64  `db:"hosting_end_time"`
	RenewBeforeSeconds    sql.NullInt64  `db:"renew_before_seconds"`
	// MaintenanceWindow is the weekly windows automatic renewals wait for, as JSON text (the
	// lifecycle package reads and writes it); NULL for none.
	MaintenanceWindow sql.NullString `db:"maintenance_window"`

	// The bundle's current certificate (RefreshCurrent): the instance and issuance to serve now,
	// and that certificate's not_after; NULL while the bundle has no valid certificate.
	CurrentCertificateID sql.NullString `db:"current_certificate_id"`
	CurrentIssuanceID    sql.NullString `db:"current_issuance_id"`
	CurrentNotAfter      sql.NullInt64  `db:"current_not_after"`
}

// Hosting statuses, as stored in bundles.hosting_status.
const (
	HostingNotHosted = "NOT_HOSTED"
	HostingWaiting   = "WAITING"
	HostingActive    = "ACTIVE"
	HostingEnding    = "ENDING"
	HostingEnded     = "ENDED"
	// HostingLapsed: the certificate in use expired before its successor was issued; hosting goes
	// on, and the next issuance makes it ACTIVE again.
	HostingLapsed = "LAPSED"
)

const bundleColumns = `bundle_id, account_id, order_id, product_id, validation_type, domain_type, domain_count,
	hosting, subscription_years, create_time, t0, template_application_id, renewal_application_id, hosting_status,
	hosting_end_time, renew_before_seconds, current_certificate_id, current_issuance_id, current_not_after,
	maintenance_window`

// Certificate is one certificate instance row.
type Certificate struct {
	ID            string        `db:"certificate_id"`
	BundleID      string        `db:"bundle_id"`
	AccountID     string        `db:"account_id"`
	Sequence      int           `db:"sequence"`
	State         state.State   `db:"state"`
	CoverageStart sql.NullInt64 `db:"coverage_start"`
	CoverageEnd   sql.NullInt64 `db:"coverage_end"`
	CreateTime    int64         `db:"create_time"`
	UpdateTime    int64         `db:"update_time"`

	CurrentIssuanceID    sql.NullString `db:"current_issuance_id"`
	CurrentApplicationID sql.NullString `db:"current_application_id"`
	RenewAt              sql.NullInt64  `db:"renew_at"`
	ExpireAt             sql.NullInt64  `db:"expire_at"`
	EscalateAt           sql.NullInt64  `db:"escalate_at"`
	ARICheckAt           sql.NullInt64  `db:"ari_check_at"`
	// RetryAt is when the ticker submits the next automatic attempt of a rejected hosted renewal
	// for this (VALIDATION_FAILED) instance; Retries counts the attempts of the current renewal.
	RetryAt sql.NullInt64 `db:"retry_at"`
	Retries int           `db:"retries"`
	// RemindAt is when the ticker next looks at the instance's certificate for an expiry reminder
	// (SweepRemind): its next reminder threshold, or its issuance time; NULL when there is nothing
	// to remind of.
	RemindAt sql.NullInt64 `db:"remind_at"`
}

const certificateColumns = `certificate_id, bundle_id, account_id, sequence, state, coverage_start, coverage_end,
	create_time, update_time, current_issuance_id, current_application_id, renew_at, expire_at, escalate_at,
	ari_check_at, retry_at, retries, remind_at`

// Event is one history entry.
type Event struct {
	ID            int64       `db:"event_id"`
	AccountID     string      `db:"account_id"`
	BundleID      string      `db:"bundle_id"`
	CertificateID string      `db:"certificate_id"`
	Type          string      `db:"type"`
	From          state.State `db:"from_state"`
	To            state.State `db:"to_state"`
	Actor         state.Actor `db:"actor"`
	Reason        string      `db:"reason"`
	Time          int64       `db:"time"`
	SupportCaseID string      `db:"support_case_id"`
}

const eventColumns = `event_id, account_id, bundle_id, certificate_id, type, from_state, to_state, actor, reason, time,
	support_case_id`

// Event types, as stored; the API's EventType without its prefix, lower case.
const (
	EventCreated              = "created"
	EventActivated            = "activated"
	EventApplicationSubmitted = "application_submitted"
	EventValidationFailed     = "validation_failed"
	EventIssued               = "issued"
	EventHosted               = "hosted"
	EventRenewalStarted       = "renewal_started"
	EventSuperseded           = "superseded"
	EventSupportCaseOpened    = "support_case_opened"
	EventSupportCaseUpdated   = "support_case_updated"
	EventSupportCaseResolved  = "support_case_resolved"
	EventHostingEnding        = "hosting_ending"
	EventExpired              = "expired"
	EventHostingEnded         = "hosting_ended"
	EventRenewalFailed        = "renewal_failed"
	EventHostingEnabled       = "hosting_enabled"
	EventImported             = "imported"
	EventCoverageLapsed       = "coverage_lapsed"
	EventRevoked              = "revoked"
	EventTemplateUpdated      = "template_updated"
	EventCancelled            = "cancelled"
	// EventExpiryReminder: the certificate, which has no successor yet, expires within one of the
	// account's reminder thresholds; the reason names the threshold ("7 days") and the not_after.
	EventExpiryReminder = "expiry_reminder"
)

// Store is the lifecycle database.
type Store struct {
	db       *db.DB
	onEvents func()
}

// New wraps an opened database. onEvents, if not nil, is called after every commit that appended
// history events (it wakes WatchEvents streams); it must not block.
func New(d *db.DB, onEvents func()) *Store { return &Store{db: d, onEvents: onEvents} }

// NewBundle is a bundle to create with its instances.
type NewBundle struct {
	Bundle       Bundle
	Certificates []Certificate // in sequence order, states set
	Reason       string        // recorded on each instance's first history event
}

// CreateBundle inserts the bundle, its instances and each instance's first history event in one
// transaction. If the bundle exists already it returns the existing one (created false) when it
// was made for the same order and account, and AlreadyExists otherwise.
func (s *Store) CreateBundle(ctx context.Context, nb NewBundle) (b Bundle, created bool, err error) {
	bs, cs, _, err := s.CreateBundles(ctx, []NewBundle{nb})
	if err != nil {
		return Bundle{}, false, err
	}
	return bs[0], cs[0], nil
}

// CreateBundles is CreateBundle for several bundles in one transaction: all of them are created
// (or found, for repeated deliveries) or, on any error, none is. created[i] tells whether bundle i
// was inserted now. One transaction rather than one per bundle is the point: a batch of the
// relay's bundles costs the writer one commit. When bundle i's rows are refused (AlreadyExists,
// say), failed is i; otherwise it is -1.
func (s *Store) CreateBundles(ctx context.Context, nbs []NewBundle) (bs []Bundle, created []bool, failed int, err error) {
	err = s.db.Write(ctx, func(tx *db.Tx) error {
		// On PostgreSQL fn may run again after a serialization failure: start afresh each time.
		bs, created, failed, err = s.createBundlesTx(tx, nbs)
		if slices.Contains(created, true) {
			s.notifyEvents(tx) // once for the whole batch's events
		}
		return err
	})
	if err == nil {
		failed = -1
	}
	return bs, created, failed, err
}

// createBundlesTx writes the bundles' rows in tx. Every purchase takes this path on the service's
// one writer goroutine, so a batch costs a handful of statements whatever its size: one read of
// which bundles exist already (a repeated delivery is the rare case), then one multi-row INSERT
// each for the new bundles, their instances and their events (in chunks, Tx.NamedExec). The
// caller wakes the event watchers (notifyEvents) once per transaction that created a bundle.
func (s *Store) createBundlesTx(tx *db.Tx, nbs []NewBundle) (bs []Bundle, created []bool, failed int, err error) {
	bs, created = make([]Bundle, len(nbs)), make([]bool, len(nbs))
	stored, err := existingBundleIDs(tx, nbs)
	if err != nil {
		return bs, created, -1, err
	}
	var (
		fresh  = make([]Bundle, 0, len(nbs))
		certs  = make([]Certificate, 0, 3*len(nbs))
		events = make([]Event, 0, 3*len(nbs))
		first  = make(map[string]int, len(nbs)) // bundle id → its first request in the batch
	)
	for i, nb := range nbs {
		if stored[nb.Bundle.ID] {
			if err := existingBundle(tx, nb.Bundle, &bs[i]); err != nil {
				return bs, created, i, err
			}
			continue
		}
		if j, ok := first[nb.Bundle.ID]; ok { // the same bundle twice in one batch
			if err := sameBundle(nb.Bundle, nbs[j].Bundle); err != nil {
				return bs, created, i, err
			}
			bs[i] = nbs[j].Bundle
			continue
		}
		for _, c := range nb.Certificates {
			if err := state.Check(state.None, c.State, state.ActorSystem); err != nil {
				return bs, created, i, err
			}
			events = append(events, Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.ID,
				Type: EventCreated, From: state.None, To: c.State, Actor: state.ActorSystem, Reason: nb.Reason, Time: c.CreateTime})
		}
		first[nb.Bundle.ID] = i
		fresh = append(fresh, nb.Bundle)
		certs = append(certs, nb.Certificates...)
		bs[i], created[i] = nb.Bundle, true
	}
	if len(fresh) == 0 {
		return bs, created, -1, nil
	}
	res, err := tx.NamedExec(`INSERT INTO bundles (`+bundleColumns+`) VALUES (:bundle_id, :account_id, :order_id,
		:product_id, :validation_type, :domain_type, :domain_count, :hosting, :subscription_years, :create_time,
		:t0, :template_application_id, :renewal_application_id, :hosting_status, :hosting_end_time,
		:renew_before_seconds, :current_certificate_id, :current_issuance_id, :current_not_after, :maintenance_window)
		ON CONFLICT DO NOTHING`, fresh)
	if err != nil {
		return bs, created, -1, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return bs, created, -1, err
	} else if n < int64(len(fresh)) {
		// Not one of these bundles existed, so each row left out is an order that has a bundle.
		i, err := orderWithBundle(tx, nbs, created)
		return bs, created, i, err
	}
	if _, err := tx.NamedExec(`INSERT INTO certificates (`+certificateColumns+`) VALUES (:certificate_id,
		:bundle_id, :account_id, :sequence, :state, :coverage_start, :coverage_end, :create_time, :update_time,
		:current_issuance_id, :current_application_id, :renew_at, :expire_at, :escalate_at, :ari_check_at, :retry_at,
		:retries, :remind_at)`, certs); err != nil {
		return bs, created, -1, err
	}
	return bs, created, -1, s.appendEventsRaw(tx, events)
}

// existingBundleIDs returns which of the bundles are stored already.
func existingBundleIDs(tx *db.Tx, nbs []NewBundle) (map[string]bool, error) {
	stored := map[string]bool{}
	for start := 0; start < len(nbs); start += maxBatchRead {
		part := nbs[start:min(start+maxBatchRead, len(nbs))]
		args := make([]any, len(part))
		for i, nb := range part {
			args[i] = nb.Bundle.ID
		}
		var found []string
		if err := tx.Select(&found, `SELECT bundle_id FROM bundles WHERE bundle_id IN (`+db.Placeholders(len(args))+`)`, args...); err != nil {
			return nil, err
		}
		for _, id := range found {
			stored[id] = true
		}
	}
	return stored, nil
}

// maxBatchRead bounds the ids of one `IN (...)` read.
const maxBatchRead = 500

// orderWithBundle finds, after an insert of the created bundles left some out, the first whose
// order already has another bundle, and returns its index and the AlreadyExists error.
func orderWithBundle(tx *db.Tx, nbs []NewBundle, created []bool) (int, error) {
	for i, nb := range nbs {
		if !created[i] {
			continue
		}
		var id string
		if err := tx.Get(&id, `SELECT bundle_id FROM bundles WHERE order_id = ?`, nb.Bundle.OrderID); err != nil {
			return i, err
		}
		if id != nb.Bundle.ID {
			return i, apierr.AlreadyExists("order_id", "order %s already has a bundle", nb.Bundle.OrderID)
		}
	}
	return -1, errors.New("bundle insert left rows out, and no order has another bundle")
}

// notifyEvents has the event watchers woken once tx, which appended events, commits.
func (s *Store) notifyEvents(tx *db.Tx) {
	if s.onEvents != nil {
		tx.AfterCommit(s.onEvents)
	}
}

// existingBundle explains why inserting want changed nothing: the bundle exists (for the same
// order and account: a repeated delivery, answered with the stored bundle in *out), or it exists
// for another order, or the order already has another bundle.
func existingBundle(tx *db.Tx, want Bundle, out *Bundle) error {
	err := tx.Get(out, `SELECT `+bundleColumns+` FROM bundles WHERE bundle_id = ?`, want.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return apierr.AlreadyExists("order_id", "order %s already has a bundle", want.OrderID)
	case err != nil:
		return err
	}
	return sameBundle(want, *out)
}

// sameBundle is nil when stored, a bundle with want's id, was made for want's order and account
// (a repeated delivery), and AlreadyExists otherwise.
func sameBundle(want, stored Bundle) error {
	if stored.OrderID != want.OrderID || stored.AccountID != want.AccountID {
		return apierr.AlreadyExists("bundle_id", "%s already exists for another order", want.ID)
	}
	return nil
}

// appendEventsRaw inserts events with ids allocated from the events counter in this transaction,
// so ids increase in commit order. The rows are bound by position, several to a statement: the
// events of a renewal were a counter update and a named insert each.
func (s *Store) appendEventsRaw(tx *db.Tx, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	var last int64
	if err := tx.Get(&last, `UPDATE counters SET value = value + ? WHERE name = 'events' RETURNING value`, len(events)); err != nil {
		return fmt.Errorf("allocate event ids: %w", err)
	}
	first := last - int64(len(events)) + 1
	for i := range events {
		events[i].ID = first + int64(i)
	}
	for rest := events; len(rest) > 0; {
		n := min(len(rest), maxEventRows)
		args := make([]any, 0, n*eventFields)
		for _, e := range rest[:n] {
			args = append(args, e.ID, e.AccountID, e.BundleID, e.CertificateID, e.Type, string(e.From), string(e.To), string(e.Actor), e.Reason,
				e.Time, e.SupportCaseID)
		}
		if _, err := tx.Exec(`INSERT INTO events (`+eventColumns+`) VALUES `+db.Rows(n, eventFields), args...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// eventFields is the number of eventColumns; maxEventRows bounds the rows of one INSERT, well
// inside both dialects' limits on bound parameters.
const (
	eventFields  = 11
	maxEventRows = 500
)

// GetBundle returns a bundle of the account with its instances, or NotFound.
func (s *Store) GetBundle(ctx context.Context, accountID, bundleID string) (Bundle, []Certificate, error) {
	var b Bundle
	err := s.db.Get(ctx, &b, `SELECT `+bundleColumns+` FROM bundles WHERE bundle_id = ? AND account_id = ?`, bundleID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Bundle{}, nil, apierr.NotFound("bundle", bundleID)
	}
	if err != nil {
		return Bundle{}, nil, err
	}
	var cs []Certificate
	err = s.db.Select(ctx, &cs, `SELECT `+certificateColumns+` FROM certificates WHERE bundle_id = ? ORDER BY sequence`, bundleID)
	return b, cs, err
}

// DomainFilter selects instances by their names (certificate_domains): Name exactly, or with
// Under, every name under it and Name itself.
type DomainFilter struct {
	Name  string // as stored: lower-case A-labels
	Under bool
}

// condition is the SQL condition (on a table with certificate_id, or bundle_id when column is
// "bundle_id") and its arguments.
func (f DomainFilter) condition(accountID, column string) (string, []any) {
	q := column + ` IN (SELECT ` + column + ` FROM certificate_domains WHERE account_id = ? AND `
	if f.Under {
		rev := ReverseName(f.Name)
		return q + `(reversed = ? OR reversed LIKE ?))`, []any{accountID, rev, rev + "%"}
	}
	return q + `domain = ?)`, []any{accountID, f.Name}
}

// BundleFilter selects bundles for ListBundles; zero fields select everything.
type BundleFilter struct {
	AccountID string
	// Only, when not nil, limits the list to these bundles (a key limited to bundles).
	Only          []string
	Domain        *DomainFilter
	State         state.State // bundles with an instance in this state
	HostingStatus string
	// ExpireBefore (micros): bundles whose current certificate ends before it.
	ExpireBefore int64
}

// ListBundles returns up to limit bundles matching f, newest first, before the bundle id
// `before` (exclusive; empty for the first page), with their instances.
func (s *Store) ListBundles(ctx context.Context, f BundleFilter, before string, limit int) ([]Bundle, map[string][]Certificate, error) {
	q := `SELECT ` + bundleColumns + ` FROM bundles WHERE account_id = ?`
	args := []any{f.AccountID}
	q, args = onlyBundles(q, args, f.Only)
	if f.Domain != nil {
		cond, a := f.Domain.condition(f.AccountID, "bundle_id")
		q += ` AND ` + cond
		args = append(args, a...)
	}
	if f.State != "" {
		q += ` AND bundle_id IN (SELECT bundle_id FROM certificates WHERE account_id = ? AND state = ?)`
		args = append(args, f.AccountID, string(f.State))
	}
	if f.HostingStatus != "" {
		q += ` AND hosting_status = ?`
		args = append(args, f.HostingStatus)
	}
	if f.ExpireBefore != 0 {
		q += ` AND current_not_after IS NOT NULL AND current_not_after < ?`
		args = append(args, f.ExpireBefore)
	}
	if before != "" {
		q += ` AND bundle_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY bundle_id DESC LIMIT ?`
	args = append(args, limit)
	var bs []Bundle
	if err := s.db.Select(ctx, &bs, q, args...); err != nil || len(bs) == 0 {
		return bs, nil, err
	}
	// One query for every bundle's instances rather than one per bundle.
	in := make([]any, len(bs))
	for i, b := range bs {
		in[i] = b.ID
	}
	var cs []Certificate
	if err := s.db.Select(ctx, &cs, `SELECT `+certificateColumns+` FROM certificates WHERE bundle_id IN (`+
		db.Placeholders(len(in))+`) ORDER BY bundle_id, sequence`, in...); err != nil {
		return nil, nil, err
	}
	byBundle := make(map[string][]Certificate, len(bs))
	for _, c := range cs {
		byBundle[c.BundleID] = append(byBundle[c.BundleID], c)
	}
	return bs, byBundle, nil
}

// GetCertificate returns an instance of the account, or NotFound.
func (s *Store) GetCertificate(ctx context.Context, accountID, certificateID string) (Certificate, error) {
	var c Certificate
	err := s.db.Get(ctx, &c, `SELECT `+certificateColumns+` FROM certificates WHERE certificate_id = ? AND account_id = ?`, certificateID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Certificate{}, apierr.NotFound("certificate", certificateID)
	}
	return c, err
}

// CertificateFilter selects instances for ListCertificates.
type CertificateFilter struct {
	AccountID string
	// Only, when not nil, limits the list to these bundles' instances (a key limited to bundles).
	Only          []string
	BundleID      string      // empty: every bundle
	State         state.State // empty: every state
	Domain        *DomainFilter
	HostingStatus string // of the instance's bundle
	// ExpireBefore (micros): instances whose certificate in use (ISSUED or HOSTED) ends before it.
	ExpireBefore int64
}

// CertificatePosition is the keyset position of ListCertificates: newest bundle first, then
// sequence within a bundle.
type CertificatePosition struct {
	BundleID string
	Sequence int
}

// ListCertificates returns up to limit instances matching f after pos (zero: the first page).
func (s *Store) ListCertificates(ctx context.Context, f CertificateFilter, after CertificatePosition, limit int) ([]Certificate, error) {
	q := `SELECT ` + certificateColumns + ` FROM certificates WHERE account_id = ?`
	args := []any{f.AccountID}
	q, args = onlyBundles(q, args, f.Only)
	if f.BundleID != "" {
		q += ` AND bundle_id = ?`
		args = append(args, f.BundleID)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.Domain != nil {
		cond, a := f.Domain.condition(f.AccountID, "certificate_id")
		q += ` AND ` + cond
		args = append(args, a...)
	}
	if f.HostingStatus != "" {
		q += ` AND bundle_id IN (SELECT bundle_id FROM bundles WHERE account_id = ? AND hosting_status = ?)`
		args = append(args, f.AccountID, f.HostingStatus)
	}
	if f.ExpireBefore != 0 {
		q += ` AND expire_at IS NOT NULL AND expire_at < ?`
		args = append(args, f.ExpireBefore)
	}
	if after.BundleID != "" {
		q += ` AND (bundle_id < ? OR (bundle_id = ? AND sequence > ?))`
		args = append(args, after.BundleID, after.BundleID, after.Sequence)
	}
	q += ` ORDER BY bundle_id DESC, sequence LIMIT ?`
	args = append(args, limit)
	var cs []Certificate
	err := s.db.Select(ctx, &cs, q, args...)
	return cs, err
}

// ListEvents returns up to limit history events of an instance of the account, oldest first,
// after event id `after` (0 for the first page). NotFound if the instance is not the account's.
func (s *Store) ListEvents(ctx context.Context, accountID, certificateID string, after int64, limit int) ([]Event, error) {
	if _, err := s.GetCertificate(ctx, accountID, certificateID); err != nil {
		return nil, err
	}
	var es []Event
	err := s.db.Select(ctx, &es, `SELECT `+eventColumns+` FROM events WHERE certificate_id = ? AND event_id > ?
		ORDER BY event_id LIMIT ?`, certificateID, after, limit)
	return es, err
}

// CertificateOf returns an instance; accountID empty means any account (support engineers and
// the ticker), otherwise NotFound unless it is the account's.
func (s *Store) CertificateOf(ctx context.Context, accountID, certificateID string) (Certificate, error) {
	if accountID != "" {
		return s.GetCertificate(ctx, accountID, certificateID)
	}
	var c Certificate
	err := s.db.Get(ctx, &c, `SELECT `+certificateColumns+` FROM certificates WHERE certificate_id = ?`, certificateID)
	if errors.Is(err, sql.ErrNoRows) {
		return Certificate{}, apierr.NotFound("certificate", certificateID)
	}
	return c, err
}

// BackfillDomains fills the domain filters' names (certificate_domains) of instances applied for
// before they were kept (migration 00006): the names of each instance's latest application, a
// batch at a time. It returns how many instances it filled; run at start, it finds nothing to do
// after the first time. The batches walk the applications in id order from where the last one
// ended, so the whole pass reads each row once (restarting from the first id at every batch read
// the rows already filled again: quadratic, an hour for a million instances), and an application
// with no names cannot come back forever.
func (s *Store) BackfillDomains(ctx context.Context) (int, error) {
	total, after := 0, ""
	for {
		var as []Application
		if err := s.db.Select(ctx, &as, `SELECT `+prefixed("a", applicationColumns)+` FROM applications a
			JOIN certificates c ON c.current_application_id = a.application_id
			WHERE a.application_id > ?
			AND NOT EXISTS (SELECT 1 FROM certificate_domains d WHERE d.certificate_id = c.certificate_id)
			ORDER BY a.application_id LIMIT 500`, after); err != nil || len(as) == 0 {
			return total, err
		}
		after = as[len(as)-1].ID
		err := s.db.Write(ctx, func(dtx *db.Tx) error {
			tx := &Tx{s: s, tx: dtx}
			for i := range as {
				if err := tx.setDomains(&as[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(as)
	}
}

// prefixed qualifies a column list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + "." + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

// ListAudit returns up to limit of the lifecycle database's audit events matching f, newest first,
// before audit id `before`.
func (s *Store) ListAudit(ctx context.Context, f auth.AuditFilter, before string, limit int) ([]auth.AuditEvent, error) {
	return auth.ListAudit(ctx, s.db, f, before, limit)
}

// onlyBundles adds the condition "bundle_id among only" to a query, unless only is nil. An empty,
// non-nil only selects nothing.
func onlyBundles(q string, args []any, only []string) (string, []any) {
	switch {
	case only == nil:
		return q, args
	case len(only) == 0:
		return q + ` AND 1 = 0`, args
	}
	q += ` AND bundle_id IN (` + db.Placeholders(len(only)) + `)`
	for _, b := range only {
		args = append(args, b)
	}
	return q, args
}
