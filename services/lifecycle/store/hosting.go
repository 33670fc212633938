package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

// Application statuses, as stored.
const (
	AppSubmitting = "SUBMITTING"
	AppPending    = "PENDING"
	AppIssued     = "ISSUED"
	AppRejected   = "REJECTED"
	AppCancelled  = "CANCELLED"
	// AppTemplate: not an application to a CA but what a hosted bundle's renewals apply with, set
	// by UpdateApplicationTemplate (bundles.template_application_id names it).
	AppTemplate = "TEMPLATE"
)

// Application is one application row. Domains, Contact, Organization and Instructions are JSON.
type Application struct {
	ID                 string         `db:"application_id"`
	CertificateID      string         `db:"certificate_id"`
	BundleID           string         `db:"bundle_id"`
	AccountID          string         `db:"account_id"`
	Status             string         `db:"status"`
	Automatic          bool           `db:"automatic"`
	Actor              state.Actor    `db:"actor"`
	Domains            string         `db:"domains"`
	ValidationMethod   string         `db:"validation_method"`
	Contact            string         `db:"contact"`
	Organization       sql.NullString `db:"organization"`
	KeyAlgorithm       string         `db:"key_algorithm"`
	CSRPEM             sql.NullString `db:"csr_pem"`
	KeySealed          sql.NullString `db:"key_sealed"`
	RequestedNotAfter  sql.NullInt64  `db:"requested_not_after"`
	ReplacesIssuanceID sql.NullString `db:"replaces_issuance_id"`
	CAName             string         `db:"ca_name"`
	CARef              sql.NullString `db:"ca_ref"`
	Instructions       string         `db:"instructions"`
	Attempts           int            `db:"attempts"`
	NextPollAt         sql.NullInt64  `db:"next_poll_at"`
	LastError          sql.NullString `db:"last_error"`
	RejectReason       sql.NullString `db:"reject_reason"`
	RejectMessage      sql.NullString `db:"reject_message"`
	CreateTime         int64          `db:"create_time"`
	UpdateTime         int64          `db:"update_time"`
	// Imported: the certificate and key came from the customer (ImportCertificate); no CA was
	// asked. Recorded ISSUED at once.
	Imported bool `db:"imported"`
	// TraceContext is the trace of what made the application (a traceparent; empty when tracing
	// is off): the ticker's CA calls for it continue that trace.
	TraceContext string `db:"trace_context"`
}

const applicationColumns = `application_id, certificate_id, bundle_id, account_id, status, automatic, actor, domains,
	validation_method, contact, organization, key_algorithm, csr_pem, key_sealed, requested_not_after,
	replaces_issuance_id, ca_name, ca_ref, instructions, attempts, next_poll_at, last_error, reject_reason,
	reject_message, create_time, update_time, imported, trace_context`

// Issuance is one issued certificate.
type Issuance struct {
	ID            string `db:"issuance_id"`
	CertificateID string `db:"certificate_id"`
	ApplicationID string `db:"application_id"`
	BundleID      string `db:"bundle_id"`
	AccountID     string `db:"account_id"`
	Serial        string `db:"serial"`
	NotBefore     int64  `db:"not_before"`
	NotAfter      int64  `db:"not_after"`
	ChainPEM      string `db:"chain_pem"`
	CreateTime    int64  `db:"create_time"`
	// RevokeTime and RevokeReason (RFC 5280 code) are set once the certificate is revoked.
	RevokeTime   sql.NullInt64 `db:"revoke_time"`
	RevokeReason sql.NullInt64 `db:"revoke_reason"`
}

const issuanceColumns = `issuance_id, certificate_id, application_id, bundle_id, account_id, serial, not_before,
	not_after, chain_pem, create_time, revoke_time, revoke_reason`

// CertificateView is an instance with its current issuance and latest application, as the API
// shows it.
type CertificateView struct {
	Certificate
	Issuance    *Issuance
	Application *Application
	// Renewal is the newest application for a successor of the certificate in use (whichever
	// instance it is for); nil when none was made.
	Renewal *Application
	// OpenCaseID is the unresolved support case of the instance's incident (its own, or its
	// hosted bundle's), if any.
	OpenCaseID string
	// Validity is every certificate the instance has had, [not_before, not_after) in micros (a
	// revoked one's ending at its revocation).
	Validity [][2]int64
}

// CertificateView reads an instance of the account with its current issuance and application.
func (s *Store) CertificateView(ctx context.Context, accountID, certificateID string) (CertificateView, error) {
	c, err := s.GetCertificate(ctx, accountID, certificateID)
	if err != nil {
		return CertificateView{}, err
	}
	views, err := s.Views(ctx, []Certificate{c})
	if err != nil {
		return CertificateView{}, err
	}
	return views[0], nil
}

// Views attaches their current issuances and applications to instances, in two queries however
// many instances there are.
func (s *Store) Views(ctx context.Context, cs []Certificate) ([]CertificateView, error) {
	out := make([]CertificateView, len(cs))
	var issIDs, appIDs []any
	for i, c := range cs {
		out[i].Certificate = c
		if c.CurrentIssuanceID.Valid {
			issIDs = append(issIDs, c.CurrentIssuanceID.String)
		}
		if c.CurrentApplicationID.Valid {
			appIDs = append(appIDs, c.CurrentApplicationID.String)
		}
	}
	iss := map[string]*Issuance{}
	if len(issIDs) > 0 {
		var rows []Issuance
		if err := s.db.Select(ctx, &rows, `SELECT `+issuanceColumns+` FROM issuances WHERE issuance_id IN (`+db.Placeholders(len(issIDs))+`)`, issIDs...); err != nil {
			return nil, err
		}
		for i := range rows {
			iss[rows[i].ID] = &rows[i]
		}
	}
	apps := map[string]*Application{}
	if len(appIDs) > 0 {
		var rows []Application
		if err := s.db.Select(ctx, &rows, `SELECT `+applicationColumns+` FROM applications WHERE application_id IN (`+db.Placeholders(len(appIDs))+`)`, appIDs...); err != nil {
			return nil, err
		}
		for i := range rows {
			apps[rows[i].ID] = &rows[i]
		}
	}
	for i := range out {
		out[i].Issuance = iss[out[i].CurrentIssuanceID.String]
		out[i].Application = apps[out[i].CurrentApplicationID.String]
	}
	if len(cs) == 0 {
		return out, nil
	}
	return out, s.viewExtras(ctx, out, issIDs)
}

// viewExtras attaches to views their renewal application, open case and validity periods: three
// queries however many views there are.
func (s *Store) viewExtras(ctx context.Context, out []CertificateView, issIDs []any) error {
	if len(issIDs) > 0 {
		var rows []Application
		if err := s.db.Select(ctx, &rows, `SELECT `+applicationColumns+` FROM applications WHERE replaces_issuance_id IN (`+
			db.Placeholders(len(issIDs))+`) ORDER BY create_time, application_id`, issIDs...); err != nil {
			return err
		}
		newest := map[string]*Application{}
		for i := range rows {
			newest[rows[i].ReplacesIssuanceID.String] = &rows[i]
		}
		for i := range out {
			if out[i].CurrentIssuanceID.Valid {
				out[i].Renewal = newest[out[i].CurrentIssuanceID.String]
			}
		}
	}
	certIDs, incidents, seen := make([]any, len(out)), make([]any, 0, 2*len(out)), map[string]bool{}
	for i := range out {
		certIDs[i] = out[i].ID
		for _, k := range []string{out[i].ID, out[i].BundleID} { // an instance's incident, or its hosted bundle's
			if !seen[k] {
				seen[k] = true
				incidents = append(incidents, k)
			}
		}
	}
	var periods []struct {
		CertificateID string        `db:"certificate_id"`
		NotBefore     int64         `db:"not_before"`
		NotAfter      int64         `db:"not_after"`
		RevokeTime    sql.NullInt64 `db:"revoke_time"`
	}
	if err := s.db.Select(ctx, &periods, `SELECT certificate_id, not_before, not_after, revoke_time FROM issuances WHERE certificate_id IN (`+
		db.Placeholders(len(certIDs))+`) ORDER BY not_before`, certIDs...); err != nil {
		return err
	}
	byCert := map[string][][2]int64{}
	for _, p := range periods {
		end := p.NotAfter
		if p.RevokeTime.Valid {
			end = min(end, p.RevokeTime.Int64) // a revoked certificate covers nothing after its revocation
		}
		byCert[p.CertificateID] = append(byCert[p.CertificateID], [2]int64{p.NotBefore, end})
	}
	// The condition is the partial unique index's own (support_cases_one_open), written out so the
	// planner uses it: the unresolved case of each incident, however many cases are stored.
	var cases []struct {
		ID       string `db:"case_id"`
		Incident string `db:"incident"`
	}
	if err := s.db.Select(ctx, &cases, `SELECT case_id, incident FROM support_cases WHERE incident IN (`+
		db.Placeholders(len(incidents))+`) AND status <> 'RESOLVED'`, incidents...); err != nil {
		return err
	}
	for i := range out {
		out[i].Validity = byCert[out[i].ID]
		for _, c := range cases {
			if c.Incident == out[i].ID || c.Incident == out[i].BundleID {
				out[i].OpenCaseID = c.ID
			}
		}
	}
	return nil
}

// BundleView reads a bundle of the account with every instance's view.
func (s *Store) BundleView(ctx context.Context, accountID, bundleID string) (Bundle, []CertificateView, error) {
	b, cs, err := s.GetBundle(ctx, accountID, bundleID)
	if err != nil {
		return Bundle{}, nil, err
	}
	views, err := s.Views(ctx, cs)
	return b, views, err
}

// The sweeps of the renewal ticker. Each claims the rows due at now that no other replica holds,
// through a partial index on the sweep column, oldest first, at most limit of them, for lease
// (ClaimCertificates, ClaimApplications); it returns what it claimed.

// Sweep columns of certificates, for ClaimCertificates.
const (
	// SweepRenew: HOSTED instances whose renewal time has come.
	SweepRenew = "renew_at"
	// SweepExpire: instances whose current certificate has passed its not_after.
	SweepExpire = "expire_at"
	// SweepRenewalInfo: hosted certificates whose CA's renewal window should be asked for.
	SweepRenewalInfo = "ari_check_at"
	// SweepRetry: VALIDATION_FAILED instances whose rejected hosted renewal is due to be tried again.
	SweepRetry = "retry_at"
	// SweepEscalate: hosted instances whose successor is still not in place escalate_before their
	// expiry.
	SweepEscalate = "escalate_at"
	// SweepRemind: instances whose certificate is due for an expiry reminder (or for working out
	// its first one).
	SweepRemind = "remind_at"
)

// ClaimCertificates claims up to limit certificates due at now in a sweep column (Sweep*) for
// lease and returns them. A claim sets claim_until; other replicas' claims pass the rows by until
// then, and SaveSchedule (the work's own write) clears it. (Writes on PostgreSQL run one at a time
// under SerialWritesTable, so claims never race today; FOR UPDATE SKIP LOCKED would keep them
// apart without that lock.) The rows due are looked for on the read pool first: a sweep with
// nothing due writes nothing.
func (s *Store) ClaimCertificates(ctx context.Context, column string, now time.Time, lease time.Duration, limit int) ([]Certificate, error) {
	switch column {
	case SweepRenew, SweepExpire, SweepRenewalInfo, SweepRetry, SweepEscalate, SweepRemind:
	default:
		return nil, fmt.Errorf("store: %q is not a sweep column", column)
	}
	if s.db.Dialect() == db.SQLite {
		// A SQLite file has one service process: nobody to share with, and a claim would only
		// hold up the process's own work for a lease after a crash and restart.
		var cs []Certificate
		err := s.db.Select(ctx, &cs, `SELECT `+certificateColumns+` FROM certificates WHERE `+column+` IS NOT NULL AND `+
			column+` <= ? ORDER BY `+column+` LIMIT ?`, db.Micros(now), limit)
		return cs, err
	}
	due := column + ` IS NOT NULL AND ` + column + ` <= ? AND (claim_until IS NULL OR claim_until <= ?)`
	var one []string
	if err := s.db.Select(ctx, &one, `SELECT certificate_id FROM certificates WHERE `+due+` LIMIT 1`,
		db.Micros(now), db.Micros(now)); err != nil || len(one) == 0 {
		return nil, err
	}
	var cs []Certificate
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		cs = nil
		return tx.Select(&cs, `UPDATE certificates SET claim_until = ? WHERE certificate_id IN (
			SELECT certificate_id FROM certificates WHERE `+due+` ORDER BY `+column+` LIMIT ? FOR UPDATE SKIP LOCKED)
			RETURNING `+certificateColumns, db.Micros(now.Add(lease)), db.Micros(now), db.Micros(now), limit)
	})
	return cs, err
}

// ClaimApplications claims up to limit applications in status (SUBMITTING or PENDING) whose next
// submission or poll is due at now, for lease: their next_poll_at moves to now + lease, so no
// other replica submits or polls them meanwhile, and the outcome the work records sets it again.
// An application whose replica died is due again when the lease ends.
func (s *Store) ClaimApplications(ctx context.Context, status string, now time.Time, lease time.Duration, limit int) ([]Application, error) {
	due := `next_poll_at IS NOT NULL AND next_poll_at <= ? AND status = ?`
	if s.db.Dialect() == db.SQLite { // one process: see ClaimCertificates
		var as []Application
		err := s.db.Select(ctx, &as, `SELECT `+applicationColumns+` FROM applications WHERE `+due+` ORDER BY next_poll_at LIMIT ?`,
			db.Micros(now), status, limit)
		return as, err
	}
	var one []string
	if err := s.db.Select(ctx, &one, `SELECT application_id FROM applications WHERE `+due+` LIMIT 1`,
		db.Micros(now), status); err != nil || len(one) == 0 {
		return nil, err
	}
	var as []Application
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		as = nil
		return tx.Select(&as, `UPDATE applications SET next_poll_at = ? WHERE application_id IN (
			SELECT application_id FROM applications WHERE `+due+` ORDER BY next_poll_at LIMIT ? FOR UPDATE SKIP LOCKED)
			RETURNING `+applicationColumns, db.Micros(now.Add(lease)), db.Micros(now), status, limit)
	})
	return as, err
}

// NextDue returns the earliest time any sweep has work, or ok false when nothing is scheduled:
// the ticker sleeps until then (or its interval, whichever is sooner).
func (s *Store) NextDue(ctx context.Context) (t time.Time, ok bool, err error) {
	var v sql.NullInt64
	err = s.db.Get(ctx, &v, `SELECT MIN(t) FROM (
		SELECT MIN(renew_at) AS t FROM certificates WHERE renew_at IS NOT NULL
		UNION ALL SELECT MIN(expire_at) FROM certificates WHERE expire_at IS NOT NULL
		UNION ALL SELECT MIN(escalate_at) FROM certificates WHERE escalate_at IS NOT NULL
		UNION ALL SELECT MIN(ari_check_at) FROM certificates WHERE ari_check_at IS NOT NULL
		UNION ALL SELECT MIN(retry_at) FROM certificates WHERE retry_at IS NOT NULL
		UNION ALL SELECT MIN(remind_at) FROM certificates WHERE remind_at IS NOT NULL
		UNION ALL SELECT MIN(next_poll_at) FROM applications WHERE next_poll_at IS NOT NULL) due`)
	return db.FromNullMicros(v), v.Valid, err
}

// Issuance returns an issuance of the account.
func (s *Store) Issuance(ctx context.Context, accountID, issuanceID string) (Issuance, error) {
	var i Issuance
	err := s.db.Get(ctx, &i, `SELECT `+issuanceColumns+` FROM issuances WHERE issuance_id = ? AND account_id = ?`, issuanceID, accountID)
	return i, notFound(err, "issuance", issuanceID)
}

// ApplicationOf returns an application of the account.
func (s *Store) ApplicationOf(ctx context.Context, accountID, applicationID string) (Application, error) {
	var a Application
	err := s.db.Get(ctx, &a, `SELECT `+applicationColumns+` FROM applications WHERE application_id = ? AND account_id = ?`, applicationID, accountID)
	return a, notFound(err, "application", applicationID)
}

// BundleOf returns a bundle (any account); for the ticker.
func (s *Store) BundleOf(ctx context.Context, bundleID string) (Bundle, error) {
	var b Bundle
	err := s.db.Get(ctx, &b, `SELECT `+bundleColumns+` FROM bundles WHERE bundle_id = ?`, bundleID)
	return b, notFound(err, "bundle", bundleID)
}

// EventsAfter returns up to limit events of the account after event id `after`, oldest first,
// optionally of one bundle: the WatchEvents feed.
func (s *Store) EventsAfter(ctx context.Context, accountID, bundleID string, after int64, limit int) ([]Event, error) {
	q := `SELECT ` + eventColumns + ` FROM events WHERE account_id = ? AND event_id > ?`
	args := []any{accountID, after}
	if bundleID != "" {
		q += ` AND bundle_id = ?`
		args = append(args, bundleID)
	}
	q += ` ORDER BY event_id LIMIT ?`
	args = append(args, limit)
	var es []Event
	err := s.db.Select(ctx, &es, q, args...)
	return es, err
}

// EventsSince returns up to limit events of every account after event id `after`, oldest first:
// what the WatchEvents hub reads once per commit for all streams (by the primary key).
func (s *Store) EventsSince(ctx context.Context, after int64, limit int) ([]Event, error) {
	var es []Event
	err := s.db.Select(ctx, &es, `SELECT `+eventColumns+` FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?`, after, limit)
	return es, err
}

// LastEventID returns the newest event id (0 when there is none).
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.Get(ctx, &v, `SELECT value FROM counters WHERE name = 'events'`)
	return v, err
}

// Support cases.

// Support case kinds and statuses, as stored.
const (
	CaseValidationFailed = "VALIDATION_FAILED"
	CaseLateRenewal      = "LATE_RENEWAL"
	CaseCustomerRequest  = "CUSTOMER_REQUEST"

	CaseOpen       = "OPEN"
	CaseInProgress = "IN_PROGRESS"
	CaseResolved   = "RESOLVED"
)

// SupportCase is one support case row; Notes is a JSON array of Note.
type SupportCase struct {
	ID            string         `db:"case_id"`
	AccountID     string         `db:"account_id"`
	BundleID      string         `db:"bundle_id"`
	CertificateID string         `db:"certificate_id"`
	ApplicationID sql.NullString `db:"application_id"`
	// Incident is what the case is about (see OpenCase): at most one unresolved case has it.
	Incident   string `db:"incident"`
	Kind       string `db:"kind"`
	Urgent     bool   `db:"urgent"`
	Status     string `db:"status"`
	Assignee   string `db:"assignee"`
	Reason     string `db:"reason"`
	Summary    string `db:"summary"`
	Notes      string `db:"notes"`
	CreateTime int64  `db:"create_time"`
	UpdateTime int64  `db:"update_time"`
	// RequestID is the customer's idempotency key of a CUSTOMER_REQUEST case; NULL otherwise.
	RequestID sql.NullString `db:"request_id"`
}

// Note is one note of a support case.
type Note struct {
	Author string `json:"author"`
	Text   string `json:"text"`
	Time   int64  `json:"time"`
}

// NoteList decodes the case's notes.
func (c *SupportCase) NoteList() []Note {
	var ns []Note
	_ = json.Unmarshal([]byte(c.Notes), &ns)
	return ns
}

// AddNote appends a note.
func (c *SupportCase) AddNote(n Note) {
	ns := append(c.NoteList(), n)
	b, _ := json.Marshal(ns)
	c.Notes = string(b)
}

const caseColumns = `case_id, account_id, bundle_id, certificate_id, application_id, incident, kind, urgent, status,
	assignee, reason, summary, notes, create_time, update_time, request_id`

// OpenCase inserts a case assigned to its account's engineer (EngineerFor: chosen least-loaded
// among engineers when the account has none yet) and records the support_case_opened event. The
// caller has checked that the case's incident has no unresolved case (OpenCaseOf): a second one
// violates a unique index.
func (t *Tx) OpenCase(c *SupportCase, engineers []string) error {
	if c.Incident == "" {
		return errors.New("support case without an incident")
	}
	if len(engineers) == 0 {
		return errors.New("no support engineers configured")
	}
	engineer, err := t.EngineerFor(c.AccountID, engineers)
	if err != nil {
		return err
	}
	c.Assignee = engineer
	c.Status = CaseOpen
	c.CreateTime, c.UpdateTime = t.now, t.now
	if c.Notes == "" {
		c.Notes = "[]"
	}
	if _, err := t.tx.NamedExec(`INSERT INTO support_cases (`+caseColumns+`) VALUES (:case_id, :account_id, :bundle_id,
		:certificate_id, :application_id, :incident, :kind, :urgent, :status, :assignee, :reason, :summary, :notes,
		:create_time, :update_time, :request_id)`, c); err != nil {
		return err
	}
	cert, err := t.Certificate(c.CertificateID)
	if err != nil {
		return err
	}
	actor := state.ActorSystem
	if c.Kind == CaseCustomerRequest {
		actor = state.ActorCustomer
	}
	return t.Event(Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.CertificateID,
		Type: EventSupportCaseOpened, From: cert.State, To: cert.State, Actor: actor,
		Reason: "assigned to " + c.Assignee + ": " + c.Summary, SupportCaseID: c.ID})
}

// ResolveCases resolves, with a system note, the unresolved cases of an incident and those opened
// about an instance (incident or certificateID may be empty).
func (t *Tx) ResolveCases(incident, certificateID, note string) error {
	var cs []SupportCase
	if err := t.tx.Select(&cs, `SELECT `+caseColumns+` FROM support_cases WHERE (incident = ? OR certificate_id = ?)
		AND status <> ?`, incident, certificateID, CaseResolved); err != nil {
		return err
	}
	for i := range cs {
		cs[i].AddNote(Note{Author: "system", Text: note, Time: t.now})
		cs[i].Status = CaseResolved
		if err := t.SaveCase(&cs[i]); err != nil {
			return err
		}
	}
	return nil
}

// OpenCaseOf returns the unresolved case of an incident; ok is false when there is none.
func (t *Tx) OpenCaseOf(incident string) (c SupportCase, ok bool, err error) {
	err = t.tx.Get(&c, `SELECT `+caseColumns+` FROM support_cases WHERE incident = ? AND status <> ?`, incident, CaseResolved)
	if errors.Is(err, sql.ErrNoRows) {
		return SupportCase{}, false, nil
	}
	return c, err == nil, err
}

// Case reads a case inside the transaction.
func (t *Tx) Case(id string) (SupportCase, error) {
	var c SupportCase
	err := t.tx.Get(&c, `SELECT `+caseColumns+` FROM support_cases WHERE case_id = ?`, id)
	return c, notFound(err, "support case", id)
}

// SaveCase writes a case's status, assignee, urgency, rejection reason and notes.
//
// Every change to a case is also a history event of its instance, support_case_resolved when it
// becomes RESOLVED and support_case_updated otherwise (a note, a status, an assignee), naming the
// case: the notifications follow the events (package notify), so the account and its engineer hear
// of each change.
func (t *Tx) SaveCase(c *SupportCase) error {
	var prev string
	if err := t.tx.Get(&prev, `SELECT status FROM support_cases WHERE case_id = ?`, c.ID); err != nil {
		return err
	}
	c.UpdateTime = t.now
	if _, err := t.tx.Exec(`UPDATE support_cases SET status = ?, assignee = ?, urgent = ?, reason = ?, notes = ?, update_time = ?
		WHERE case_id = ?`, c.Status, c.Assignee, c.Urgent, c.Reason, c.Notes, c.UpdateTime, c.ID); err != nil {
		return err
	}
	cert, err := t.Certificate(c.CertificateID)
	if err != nil {
		return err
	}
	typ, reason := EventSupportCaseUpdated, "case "+c.Status
	if c.Status == CaseResolved && prev != CaseResolved {
		typ, reason = EventSupportCaseResolved, "case resolved"
	}
	if notes := c.NoteList(); len(notes) > 0 {
		reason += ": " + notes[len(notes)-1].Text
	}
	return t.Event(Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.CertificateID, Type: typ,
		From: cert.State, To: cert.State, Actor: state.ActorSystem, Reason: reason, SupportCaseID: c.ID})
}

// GetCase reads a case; accountID empty means any account (support engineers).
func (s *Store) GetCase(ctx context.Context, accountID, caseID string) (SupportCase, error) {
	q := `SELECT ` + caseColumns + ` FROM support_cases WHERE case_id = ?`
	args := []any{caseID}
	if accountID != "" {
		q += ` AND account_id = ?`
		args = append(args, accountID)
	}
	var c SupportCase
	err := s.db.Get(ctx, &c, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return SupportCase{}, apierr.NotFound("support case", caseID)
	}
	return c, err
}

// CaseFilter selects cases for ListCases.
type CaseFilter struct {
	AccountID   string // empty: every account
	Status      string
	Assignee    string
	Certificate string
}

// ListCases returns up to limit cases matching f, newest first, before case id `before`.
func (s *Store) ListCases(ctx context.Context, f CaseFilter, before string, limit int) ([]SupportCase, error) {
	q := `SELECT ` + caseColumns + ` FROM support_cases WHERE 1 = 1`
	var args []any
	for _, cond := range []struct{ col, val string }{
		{"account_id", f.AccountID}, {"status", f.Status}, {"assignee", f.Assignee}, {"certificate_id", f.Certificate},
	} {
		if cond.val != "" {
			q += ` AND ` + cond.col + ` = ?`
			args = append(args, cond.val)
		}
	}
	if before != "" {
		q += ` AND case_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY case_id DESC LIMIT ?`
	args = append(args, limit)
	var cs []SupportCase
	err := s.db.Select(ctx, &cs, q, args...)
	return cs, err
}

// The delegated DNS zone's records.

// StaleRecordAge is how old a TXT value in the delegated zone may get. A DNS-01 value is needed
// only while the CA validates its challenge, minutes after it is published; the ACME client
// removes it once the authorization has its verdict, but a removal that failed (the database
// briefly unavailable) would leave it there. So publishing at a name first drops the values there
// older than this: a stale value lasts until the name's next application (the bundle's next
// renewal), not forever; one at a name never published at again stays, a few bytes.
const StaleRecordAge = 24 * time.Hour

// PublishRecord adds a TXT value at fqdn (lower case, with the trailing dot), dropping the values
// there older than StaleRecordAge; adding one that is there already is a no-op.
func (s *Store) PublishRecord(ctx context.Context, fqdn, value string, now time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(`DELETE FROM dns_records WHERE fqdn = ? AND create_time < ?`,
			fqdn, db.Micros(now.Add(-StaleRecordAge))); err != nil {
			return err
		}
		var n int
		if err := tx.Get(&n, `SELECT COUNT(*) FROM dns_records WHERE fqdn = ? AND value = ?`, fqdn, value); err != nil || n > 0 {
			return err
		}
		_, err := tx.Exec(`INSERT INTO dns_records (fqdn, value, create_time) VALUES (?, ?, ?)`, fqdn, value, db.Micros(now))
		return err
	})
}

// RemoveRecord removes a TXT value at fqdn.
func (s *Store) RemoveRecord(ctx context.Context, fqdn, value string) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(`DELETE FROM dns_records WHERE fqdn = ? AND value = ?`, fqdn, value)
		return err
	})
}

// Records returns the TXT values at fqdn.
func (s *Store) Records(ctx context.Context, fqdn string) ([]string, error) {
	var vs []string
	err := s.db.Select(ctx, &vs, `SELECT value FROM dns_records WHERE fqdn = ? ORDER BY create_time, value`, fqdn)
	return vs, err
}
