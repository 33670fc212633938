package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
)

// WebhookEndpoint is one webhook_endpoints row. Kinds is the space-separated list of the
// notification kinds it wants (empty: all); the secrets are sealed (secrets.Box).
type WebhookEndpoint struct {
	ID                   string        `db:"endpoint_id"`
	AccountID            string        `db:"account_id"`
	URL                  string        `db:"url"`
	Kinds                string        `db:"kinds"`
	Description          string        `db:"description"`
	Disabled             bool          `db:"disabled"`
	SecretSealed         string        `db:"secret_sealed"`
	PreviousSecretSealed string        `db:"previous_secret_sealed"`
	PreviousSecretExpire sql.NullInt64 `db:"previous_secret_expire"`
	CreateTime           int64         `db:"create_time"`
	UpdateTime           int64         `db:"update_time"`
}

const endpointColumns = `endpoint_id, account_id, url, kinds, description, disabled, secret_sealed,
	previous_secret_sealed, previous_secret_expire, create_time, update_time`

// Notification channels and statuses, as stored.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"

	NotificationPending   = "pending"
	NotificationSucceeded = "succeeded"
	NotificationFailed    = "failed"

	// LaneSMTP is the lane of every e-mail: one SMTP relay, one worker.
	LaneSMTP = "smtp"
)

// Notification is one notifications row: one event for one endpoint or one e-mail recipient.
type Notification struct {
	ID              string        `db:"notification_id"`
	AccountID       string        `db:"account_id"`
	EventID         int64         `db:"event_id"`
	Kind            string        `db:"kind"`
	Channel         string        `db:"channel"`
	Lane            string        `db:"lane"`
	EndpointID      string        `db:"endpoint_id"`
	Recipient       string        `db:"recipient"`
	MessageID       string        `db:"message_id"`
	Payload         string        `db:"payload"`
	Status          string        `db:"status"`
	Attempts        int64         `db:"attempts"`
	LastStatusCode  int64         `db:"last_status_code"`
	LastError       string        `db:"last_error"`
	CreateTime      int64         `db:"create_time"`
	GiveUpTime      int64         `db:"give_up_time"`
	LastAttemptTime sql.NullInt64 `db:"last_attempt_time"`
	NextAttemptTime sql.NullInt64 `db:"next_attempt_time"`
	ClaimUntil      sql.NullInt64 `db:"claim_until"`
}

const notificationColumns = `notification_id, account_id, event_id, kind, channel, lane, endpoint_id, recipient,
	message_id, payload, status, attempts, last_status_code, last_error, create_time, give_up_time,
	last_attempt_time, next_attempt_time, claim_until`

const notificationValues = `:notification_id, :account_id, :event_id, :kind, :channel, :lane, :endpoint_id,
	:recipient, :message_id, :payload, :status, :attempts, :last_status_code, :last_error, :create_time,
	:give_up_time, :last_attempt_time, :next_attempt_time, :claim_until`

// InsertEndpoint adds a webhook endpoint.
func (t *Tx) InsertEndpoint(e WebhookEndpoint) error {
	_, err := t.tx.NamedExec(`INSERT INTO webhook_endpoints (`+endpointColumns+`) VALUES (:endpoint_id, :account_id,
		:url, :kinds, :description, :disabled, :secret_sealed, :previous_secret_sealed, :previous_secret_expire,
		:create_time, :update_time)`, e)
	return err
}

// Endpoint reads an endpoint of the account, or NotFound (another account's endpoint is not found).
func (t *Tx) Endpoint(accountID, id string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := t.tx.Get(&e, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE endpoint_id = ? AND account_id = ?`, id, accountID)
	return e, notFound(err, "webhook endpoint", id)
}

// CountEndpoints is how many endpoints the account has.
func (t *Tx) CountEndpoints(accountID string) (int, error) {
	var n int
	err := t.tx.Get(&n, `SELECT COUNT(*) FROM webhook_endpoints WHERE account_id = ?`, accountID)
	return n, err
}

// SaveEndpoint writes an endpoint's changeable columns.
func (t *Tx) SaveEndpoint(e *WebhookEndpoint) error {
	e.UpdateTime = t.now
	return db.ExpectOne(t.tx.Exec(`UPDATE webhook_endpoints SET url = ?, kinds = ?, description = ?, disabled = ?,
		secret_sealed = ?, previous_secret_sealed = ?, previous_secret_expire = ?, update_time = ? WHERE endpoint_id = ?`,
		e.URL, e.Kinds, e.Description, e.Disabled, e.SecretSealed, e.PreviousSecretSealed, e.PreviousSecretExpire,
		e.UpdateTime, e.ID))
}

// DeleteEndpoint removes an endpoint and marks its pending deliveries failed.
func (t *Tx) DeleteEndpoint(id string) error {
	if _, err := t.tx.Exec(`UPDATE notifications SET status = ?, last_error = ?, next_attempt_time = NULL
		WHERE endpoint_id = ? AND status = ?`, NotificationFailed, "endpoint deleted", id, NotificationPending); err != nil {
		return err
	}
	return db.ExpectOne(t.tx.Exec(`DELETE FROM webhook_endpoints WHERE endpoint_id = ?`, id))
}

// AccountEndpoints reads the account's enabled endpoints (for the fan-out).
func (t *Tx) AccountEndpoints(accountID string) ([]WebhookEndpoint, error) {
	var es []WebhookEndpoint
	err := t.tx.Select(&es, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE account_id = ? AND NOT disabled
		ORDER BY endpoint_id`, accountID)
	return es, err
}

// ListEndpoints returns the account's endpoints, newest first.
func (s *Store) ListEndpoints(ctx context.Context, accountID string) ([]WebhookEndpoint, error) {
	var es []WebhookEndpoint
	err := s.db.Select(ctx, &es, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE account_id = ?
		ORDER BY endpoint_id DESC`, accountID)
	return es, err
}

// GetEndpoint reads an endpoint of the account, or NotFound.
func (s *Store) GetEndpoint(ctx context.Context, accountID, id string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.db.Get(ctx, &e, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE endpoint_id = ? AND account_id = ?`, id, accountID)
	return e, notFound(err, "webhook endpoint", id)
}

// EndpointByID reads an endpoint of any account (the delivery worker), or NotFound.
func (s *Store) EndpointByID(ctx context.Context, id string) (WebhookEndpoint, error) {
	var e WebhookEndpoint
	err := s.db.Get(ctx, &e, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE endpoint_id = ?`, id)
	return e, notFound(err, "webhook endpoint", id)
}

// InsertNotifications queues notifications.
func (t *Tx) InsertNotifications(ns []Notification) error {
	if len(ns) == 0 {
		return nil
	}
	_, err := t.tx.NamedExec(`INSERT INTO notifications (`+notificationColumns+`) VALUES (`+notificationValues+`)`, ns)
	return err
}

// Notification reads a notification of the account, or NotFound.
func (t *Tx) Notification(accountID, id string) (Notification, error) {
	var n Notification
	err := t.tx.Get(&n, `SELECT `+notificationColumns+` FROM notifications WHERE notification_id = ? AND account_id = ?`, id, accountID)
	return n, notFound(err, "webhook delivery", id)
}

// FanOut follows the events table from the persisted cursor: it reads up to limit events after
// it, lets build turn them into notifications (build may read through tx), inserts those and
// moves the cursor past the events, all in one transaction. Event ids are allocated from a
// counter row inside each event's own transaction, so they increase in commit order: no event
// can later commit below the cursor, and a crash before this commit leaves the cursor where it
// was and the events are fanned out again; a crash after it keeps rows and cursor together. It
// returns how many events it consumed.
func (s *Store) FanOut(ctx context.Context, now int64, limit int, build func(tx *Tx, events []Event) ([]Notification, error)) (int, error) {
	var consumed int
	err := s.Write(ctx, now, func(tx *Tx) error {
		var cursor int64
		if err := tx.tx.Get(&cursor, `SELECT value FROM counters WHERE name = 'notify_cursor'`); err != nil {
			return fmt.Errorf("read notify cursor: %w", err)
		}
		var events []Event
		if err := tx.tx.Select(&events, `SELECT `+eventColumns+` FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?`,
			cursor, limit); err != nil {
			return err
		}
		consumed = len(events)
		if len(events) == 0 {
			return nil
		}
		ns, err := build(tx, events)
		if err != nil {
			return err
		}
		if err := tx.InsertNotifications(ns); err != nil {
			return err
		}
		return db.ExpectOne(tx.tx.Exec(`UPDATE counters SET value = ? WHERE name = 'notify_cursor' AND value = ?`,
			events[len(events)-1].ID, cursor))
	})
	if errors.Is(err, db.ErrConflict) {
		// Another replica moved the cursor first; its rows are the ones that count.
		return 0, nil
	}
	return consumed, err
}

// DueLanes returns the lanes that have a pending notification due at now and not claimed.
func (s *Store) DueLanes(ctx context.Context, now time.Time) ([]string, error) {
	var lanes []string
	n := db.Micros(now)
	err := s.db.Select(ctx, &lanes, `SELECT DISTINCT lane FROM notifications WHERE status = ? AND next_attempt_time <= ?
		AND (claim_until IS NULL OR claim_until <= ?) ORDER BY lane`, NotificationPending, n, n)
	return lanes, err
}

// ClaimNext claims the oldest due notification of a lane until now+lease, so another worker or
// replica passes it by while it is being sent; ok is false when none is due.
func (s *Store) ClaimNext(ctx context.Context, lane string, now time.Time, lease time.Duration) (n Notification, ok bool, err error) {
	at := db.Micros(now)
	err = s.db.Write(ctx, func(tx *db.Tx) error {
		err := tx.Get(&n, `SELECT `+notificationColumns+` FROM notifications WHERE status = ? AND lane = ?
			AND next_attempt_time <= ? AND (claim_until IS NULL OR claim_until <= ?)
			ORDER BY next_attempt_time, notification_id LIMIT 1`, NotificationPending, lane, at, at)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		n.ClaimUntil = sql.NullInt64{Int64: db.Micros(now.Add(lease)), Valid: true}
		ok = true
		return db.ExpectOne(tx.Exec(`UPDATE notifications SET claim_until = ? WHERE notification_id = ?`, n.ClaimUntil, n.ID))
	})
	return n, ok && err == nil, err
}

// RecordAttempt writes the outcome of an attempt: n's status, attempts, last_* and
// next_attempt_time as the caller set them; the claim is released.
func (s *Store) RecordAttempt(ctx context.Context, n Notification) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		return db.ExpectOne(tx.Exec(`UPDATE notifications SET status = ?, attempts = ?, last_status_code = ?, last_error = ?,
			last_attempt_time = ?, next_attempt_time = ?, claim_until = NULL WHERE notification_id = ? AND status = ?`,
			n.Status, n.Attempts, n.LastStatusCode, n.LastError, n.LastAttemptTime, n.NextAttemptTime, n.ID, NotificationPending))
	})
}

// NotificationFilter selects notifications of an account for ListNotifications.
type NotificationFilter struct {
	AccountID  string
	Channel    string
	EndpointID string // optional
}

// ListNotifications returns notifications newest first, ids before `before` (empty: from the newest).
func (s *Store) ListNotifications(ctx context.Context, f NotificationFilter, before string, limit int) ([]Notification, error) {
	q := `SELECT ` + notificationColumns + ` FROM notifications WHERE account_id = ? AND channel = ?`
	args := []any{f.AccountID, f.Channel}
	if f.EndpointID != "" {
		q += ` AND endpoint_id = ?`
		args = append(args, f.EndpointID)
	}
	if before != "" {
		q += ` AND notification_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY notification_id DESC LIMIT ?`
	args = append(args, limit)
	var ns []Notification
	err := s.db.Select(ctx, &ns, q, args...)
	return ns, err
}

// GetNotification reads any notification by id (tests and the worker).
func (s *Store) GetNotification(ctx context.Context, id string) (Notification, error) {
	var n Notification
	err := s.db.Get(ctx, &n, `SELECT `+notificationColumns+` FROM notifications WHERE notification_id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return n, apierr.NotFound("notification", id)
	}
	return n, err
}

// IssuedBefore reports whether the bundle had a certificate issued (or imported) before event
// eventID: an issuance after that is a renewal.
func (t *Tx) IssuedBefore(bundleID string, eventID int64) (bool, error) {
	var n int
	err := t.tx.Get(&n, `SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE bundle_id = ? AND event_id < ? AND type IN (?, ?) LIMIT 1) AS e`,
		bundleID, eventID, EventIssued, EventImported)
	return n > 0, err
}

// UnresolvedCaseOf returns the newest unresolved support case about an instance; ok is false when
// there is none. A renewal failure opens or updates its case in the failure's transaction, so the
// fan-out finds it here for the notification.
func (t *Tx) UnresolvedCaseOf(certificateID string) (c SupportCase, ok bool, err error) {
	err = t.tx.Get(&c, `SELECT `+caseColumns+` FROM support_cases WHERE certificate_id = ? AND status <> ?
		ORDER BY case_id DESC LIMIT 1`, certificateID, CaseResolved)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	return c, err == nil, err
}
