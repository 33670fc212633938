package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

// Tx is one write transaction of the lifecycle store, with the domain's operations: the lifecycle
// package composes them, and everything in one Write commits or rolls back together.
type Tx struct {
	s   *Store
	tx  *db.Tx
	now int64
	// events are the history events recorded so far, inserted together when fn returns (flush).
	events []Event
}

// Write runs fn in one write transaction; now is the time recorded on every row it touches.
func (s *Store) Write(ctx context.Context, now int64, fn func(tx *Tx) error) error {
	return s.db.Write(ctx, func(dtx *db.Tx) error {
		tx := &Tx{s: s, tx: dtx, now: now}
		if err := fn(tx); err != nil {
			return err
		}
		return tx.flush()
	})
}

// flush inserts the events recorded in the transaction, in the order they were recorded, with one
// allocation of ids and one statement: a renewal records three in each of its two main
// transactions, which were a counter update and an insert each. Nothing in a write reads the
// events it records, so holding them until fn returns changes no outcome, and they still commit
// or roll back with everything else.
func (t *Tx) flush() error {
	if len(t.events) == 0 {
		return nil
	}
	if t.s.onEvents != nil {
		t.tx.AfterCommit(t.s.onEvents)
	}
	return t.s.appendEventsRaw(t.tx, t.events)
}

// Now is the transaction's time.
func (t *Tx) Now() int64 { return t.now }

// AfterCommit runs f once the transaction is durable.
func (t *Tx) AfterCommit(f func()) { t.tx.AfterCommit(f) }

func notFound(err error, kind, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return apierr.NotFound(kind, id)
	}
	return err
}

// Bundle reads a bundle (of any account: callers check ownership where a caller is involved).
func (t *Tx) Bundle(id string) (Bundle, error) {
	var b Bundle
	err := t.tx.Get(&b, `SELECT `+bundleColumns+` FROM bundles WHERE bundle_id = ?`, id)
	return b, notFound(err, "bundle", id)
}

// Certificate reads an instance.
func (t *Tx) Certificate(id string) (Certificate, error) {
	var c Certificate
	err := t.tx.Get(&c, `SELECT `+certificateColumns+` FROM certificates WHERE certificate_id = ?`, id)
	return c, notFound(err, "certificate", id)
}

// CertificateAt reads the instance of a bundle for subscription year sequence (1-based), or
// NotFound.
func (t *Tx) CertificateAt(bundleID string, sequence int) (Certificate, error) {
	var c Certificate
	err := t.tx.Get(&c, `SELECT `+certificateColumns+` FROM certificates WHERE bundle_id = ? AND sequence = ?`, bundleID, sequence)
	return c, notFound(err, fmt.Sprintf("instance %d of bundle", sequence), bundleID)
}

// Certificates reads every instance of a bundle in sequence order.
func (t *Tx) Certificates(bundleID string) ([]Certificate, error) {
	var cs []Certificate
	err := t.tx.Select(&cs, `SELECT `+certificateColumns+` FROM certificates WHERE bundle_id = ? ORDER BY sequence`, bundleID)
	return cs, err
}

// Application reads an application.
func (t *Tx) Application(id string) (Application, error) {
	var a Application
	err := t.tx.Get(&a, `SELECT `+applicationColumns+` FROM applications WHERE application_id = ?`, id)
	return a, notFound(err, "application", id)
}

// Issuance reads an issuance.
func (t *Tx) Issuance(id string) (Issuance, error) {
	var i Issuance
	err := t.tx.Get(&i, `SELECT `+issuanceColumns+` FROM issuances WHERE issuance_id = ?`, id)
	return i, notFound(err, "issuance", id)
}

// Transition moves c to state `to` for actor, as a compare-and-set on c's current state, and
// records the history event. It is the only way the store changes an instance's state. On success
// c.State is `to`.
func (t *Tx) Transition(c *Certificate, to state.State, actor state.Actor, eventType, reason string) error {
	return t.transition(c, to, actor, eventType, reason, false)
}

// TransitionSaving is Transition and SaveSchedule of c in one statement: the state's compare-and-
// set writes c's schedule columns too. A renewal moves three instances and saves their schedules.
func (t *Tx) TransitionSaving(c *Certificate, to state.State, actor state.Actor, eventType, reason string) error {
	return t.transition(c, to, actor, eventType, reason, true)
}

func (t *Tx) transition(c *Certificate, to state.State, actor state.Actor, eventType, reason string, schedule bool) error {
	if err := state.Check(c.State, to, actor); err != nil {
		return err
	}
	q, args := `UPDATE certificates SET state = ?, update_time = ?`, []any{string(to), t.now}
	if schedule {
		q, args = `UPDATE certificates SET state = ?, `+scheduleColumns, append([]any{string(to)}, t.scheduleArgs(c)...)
	}
	err := db.ExpectOne(t.tx.Exec(q+` WHERE certificate_id = ? AND state = ?`, append(args, c.ID, string(c.State))...))
	if errors.Is(err, db.ErrConflict) {
		return apierr.FailedPrecondition("certificate %s changed concurrently; try again", c.ID)
	}
	if err != nil {
		return err
	}
	from := c.State
	c.State, c.UpdateTime = to, t.now
	return t.Event(Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.ID, Type: eventType,
		From: from, To: to, Actor: actor, Reason: reason})
}

// Event records a history event that is not a state change (renewal started, support case
// opened, hosting ending); From and To default to the instance's current state.
// The event is inserted when the transaction's fn returns (Store.Write).
func (t *Tx) Event(e Event) error {
	e.Time = t.now
	t.events = append(t.events, e)
	return nil
}

// SaveSchedule writes an instance's non-state columns: current issuance and application, coverage,
// the sweep times (renew_at, expire_at, escalate_at, ari_check_at, retry_at, remind_at) and the retry count.
// It gives back a ticker replica's claim on the row (ClaimCertificates): the new schedule is due
// for whichever replica finds it next.
func (t *Tx) SaveSchedule(c *Certificate) error {
	_, err := t.tx.Exec(`UPDATE certificates SET `+scheduleColumns+` WHERE certificate_id = ?`, append(t.scheduleArgs(c), c.ID)...)
	return err
}

// scheduleColumns are the assignments SaveSchedule makes, with scheduleArgs' arguments.
const scheduleColumns = `current_issuance_id = ?, current_application_id = ?, coverage_start = ?, coverage_end = ?,
	renew_at = ?, expire_at = ?, escalate_at = ?, ari_check_at = ?, retry_at = ?, retries = ?, remind_at = ?,
	update_time = ?, claim_until = NULL`

// scheduleArgs are c's values for scheduleColumns, at the transaction's time (which c takes).
func (t *Tx) scheduleArgs(c *Certificate) []any {
	c.UpdateTime = t.now
	return []any{c.CurrentIssuanceID, c.CurrentApplicationID, c.CoverageStart, c.CoverageEnd, c.RenewAt, c.ExpireAt,
		c.EscalateAt, c.ARICheckAt, c.RetryAt, c.Retries, c.RemindAt, c.UpdateTime}
}

// SaveRemindAt writes an instance's remind_at alone, as a compare-and-set on the remind_at it was
// read with (was), and gives back the ticker's claim. The reminder sweep writes nothing else: a
// write of the whole schedule from its read would undo what another replica's transaction (an
// issuance, a renewal started) committed meanwhile on PostgreSQL, where a read in a transaction
// does not lock the row. db.ErrConflict means the row's remind_at changed: the caller rolls back.
func (t *Tx) SaveRemindAt(c *Certificate, was sql.NullInt64) error {
	c.UpdateTime = t.now
	return db.ExpectOne(t.tx.Exec(`UPDATE certificates SET remind_at = ?, update_time = ?, claim_until = NULL
		WHERE certificate_id = ? AND remind_at = ?`, c.RemindAt, c.UpdateTime, c.ID, was))
}

// SaveBundle writes a bundle's hosting columns (hosting itself, which EnableHosting turns on, and
// the current certificate). When expectRenewal is given, the write is a
// compare-and-set on renewal_application_id (NULL when expectRenewal.Valid is false): the guard
// that gives a bundle at most one successor in flight.
func (t *Tx) SaveBundle(b *Bundle, expectRenewal *sql.NullString) error {
	q := `UPDATE bundles SET t0 = ?, template_application_id = ?, renewal_application_id = ?, hosting_status = ?,
		hosting_end_time = ?, renew_before_seconds = ?, hosting = ?, current_certificate_id = ?, current_issuance_id = ?,
		current_not_after = ?, maintenance_window = ? WHERE bundle_id = ?`
	args := []any{b.T0, b.TemplateApplicationID, b.RenewalApplicationID, b.HostingStatus, b.HostingEndTime,
		b.RenewBeforeSeconds, b.Hosting, b.CurrentCertificateID, b.CurrentIssuanceID, b.CurrentNotAfter,
		b.MaintenanceWindow, b.ID}
	if expectRenewal == nil {
		_, err := t.tx.Exec(q, args...)
		return err
	}
	if expectRenewal.Valid {
		q += ` AND renewal_application_id = ?`
		args = append(args, expectRenewal.String)
	} else {
		q += ` AND renewal_application_id IS NULL`
	}
	return db.ExpectOne(t.tx.Exec(q, args...))
}

// InsertApplication adds an application.
func (t *Tx) InsertApplication(a *Application) error {
	a.CreateTime, a.UpdateTime = t.now, t.now
	// Bound by position, in applicationColumns' order: every renewal inserts an application, and a
	// named insert reads each of the 28 fields by reflection (Tx.NamedExec).
	_, err := t.tx.Exec(`INSERT INTO applications (`+applicationColumns+`) VALUES (`+db.Placeholders(28)+`)`,
		a.ID, a.CertificateID, a.BundleID, a.AccountID, a.Status, a.Automatic, string(a.Actor), a.Domains,
		a.ValidationMethod, a.Contact, a.Organization, a.KeyAlgorithm, a.CSRPEM, a.KeySealed, a.RequestedNotAfter,
		a.ReplacesIssuanceID, a.CAName, a.CARef, a.Instructions, a.Attempts, a.NextPollAt, a.LastError, a.RejectReason,
		a.RejectMessage, a.CreateTime, a.UpdateTime, a.Imported, a.TraceContext)
	if db.IsUniqueViolation(err) {
		return apierr.FailedPrecondition("certificate %s already has an application in flight", a.CertificateID)
	}
	if err != nil || a.Status == AppTemplate {
		return err // a template is the names of future renewals, not of the instance's certificate
	}
	return t.setDomains(a)
}

// setDomains makes the names of application a its instance's names for the domain filters
// (certificate_domains).
func (t *Tx) setDomains(a *Application) error {
	var domains []string
	if err := json.Unmarshal([]byte(a.Domains), &domains); err != nil {
		return fmt.Errorf("application %s domains: %w", a.ID, err)
	}
	if _, err := t.tx.Exec(`DELETE FROM certificate_domains WHERE certificate_id = ?`, a.CertificateID); err != nil {
		return err
	}
	var args []any
	seen := map[string]bool{}
	for _, d := range domains {
		if seen[d] {
			continue
		}
		seen[d] = true
		args = append(args, a.AccountID, a.CertificateID, a.BundleID, d, ReverseName(d))
	}
	if len(args) == 0 {
		return nil
	}
	_, err := t.tx.Exec(`INSERT INTO certificate_domains (account_id, certificate_id, bundle_id, domain, reversed)
		VALUES `+db.Rows(len(seen), 5), args...)
	return err
}

// ReverseName is a domain name with its labels in reverse order and a trailing dot:
// "shop.example.com" is "com.example.shop.", so the names under a domain share a prefix.
func ReverseName(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + "."
}

// RefreshCurrent sets the bundle's current certificate (b, saved by the caller's SaveBundle): the
// newest certificate in use (an ISSUED or HOSTED instance's, valid at the transaction's time), or
// none.
func (t *Tx) RefreshCurrent(b *Bundle) error {
	var cur []struct {
		CertificateID string `db:"certificate_id"`
		IssuanceID    string `db:"issuance_id"`
		NotAfter      int64  `db:"not_after"`
	}
	if err := t.tx.Select(&cur, `SELECT c.certificate_id, i.issuance_id, i.not_after FROM certificates c
		JOIN issuances i ON i.issuance_id = c.current_issuance_id
		WHERE c.bundle_id = ? AND c.state IN (?, ?) AND i.not_after > ?
		ORDER BY i.not_before DESC, i.issuance_id DESC LIMIT 1`, b.ID, string(state.Hosted), string(state.Issued), t.now); err != nil {
		return err
	}
	b.CurrentCertificateID, b.CurrentIssuanceID, b.CurrentNotAfter = sql.NullString{}, sql.NullString{}, sql.NullInt64{}
	if len(cur) == 1 {
		b.CurrentCertificateID = sql.NullString{String: cur[0].CertificateID, Valid: true}
		b.CurrentIssuanceID = sql.NullString{String: cur[0].IssuanceID, Valid: true}
		b.CurrentNotAfter = sql.NullInt64{Int64: cur[0].NotAfter, Valid: true}
	}
	return nil
}

// UpdateApplication writes an application's mutable columns as a compare-and-set on the status
// it had when read (expect); db.ErrConflict when someone else changed it first.
func (t *Tx) UpdateApplication(a *Application, expect string) error {
	a.UpdateTime = t.now
	return db.ExpectOne(t.tx.Exec(`UPDATE applications SET status = ?, key_sealed = ?, ca_ref = ?, instructions = ?,
		attempts = ?, next_poll_at = ?, last_error = ?, reject_reason = ?, reject_message = ?, update_time = ?
		WHERE application_id = ? AND status = ?`,
		a.Status, a.KeySealed, a.CARef, a.Instructions, a.Attempts, a.NextPollAt, a.LastError, a.RejectReason,
		a.RejectMessage, a.UpdateTime, a.ID, expect))
}

// SetApplicationKey stores the sealed key of an application being submitted, once: a compare-and-
// set on there being none, so two replicas that both generated a key (one's claim outlived its
// lease) cannot both send a CSR; the loser gets db.ErrConflict and submits the stored key later.
func (t *Tx) SetApplicationKey(a *Application) error {
	a.UpdateTime = t.now
	return db.ExpectOne(t.tx.Exec(`UPDATE applications SET key_sealed = ?, update_time = ?
		WHERE application_id = ? AND status = ? AND key_sealed IS NULL`, a.KeySealed, a.UpdateTime, a.ID, AppSubmitting))
}

// RevokeIssuance records that an issued certificate was revoked, at the transaction's time, for an
// RFC 5280 reason code; one revoked already keeps its first time and reason.
func (t *Tx) RevokeIssuance(id string, reason int) error {
	_, err := t.tx.Exec(`UPDATE issuances SET revoke_time = ?, revoke_reason = ? WHERE issuance_id = ? AND revoke_time IS NULL`,
		t.now, reason, id)
	return err
}

// InsertIssuance adds an issued certificate.
func (t *Tx) InsertIssuance(i *Issuance) error {
	i.CreateTime = t.now
	_, err := t.tx.Exec(`INSERT INTO issuances (`+issuanceColumns+`) VALUES (`+db.Placeholders(12)+`)`,
		i.ID, i.CertificateID, i.ApplicationID, i.BundleID, i.AccountID, i.Serial, i.NotBefore, i.NotAfter, i.ChainPEM,
		i.CreateTime, i.RevokeTime, i.RevokeReason)
	return err
}

// nextCounter increments a named counter and returns its new value.
func (t *Tx) nextCounter(name string, by int) (int64, error) {
	var v int64
	err := t.tx.Get(&v, `UPDATE counters SET value = value + ? WHERE name = ? RETURNING value`, by, name)
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	return v, nil
}

// Audit records e in the account's audit log, in this transaction: the entry exists exactly when
// the action does.
func (t *Tx) Audit(e auth.AuditEvent) error { return auth.InsertAudit(t.tx, e) }
