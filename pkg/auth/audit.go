package auth

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// AuditKind is what an audit event records.
type AuditKind string

// The audited actions: the ones that hand out or take away access (keys, exported private keys,
// revocations), change what the service does unasked (hosting), or are done by someone other than
// the customer (support actions, admin commands). Reads are not audited, except exports.
const (
	AuditAccountCreated      AuditKind = "ACCOUNT_CREATED"
	AuditKeyCreated          AuditKind = "API_KEY_CREATED"
	AuditKeyRevoked          AuditKind = "API_KEY_REVOKED"
	AuditCertificateExported AuditKind = "CERTIFICATE_EXPORTED"
	AuditHostingChanged      AuditKind = "HOSTING_CHANGED"
	AuditCertificateRevoked  AuditKind = "CERTIFICATE_REVOKED"
	AuditSupportCaseUpdated  AuditKind = "SUPPORT_CASE_UPDATED"
	AuditAccountEngineerSet  AuditKind = "ACCOUNT_ENGINEER_SET"
	// AuditWebhookChanged: a webhook endpoint was created, updated, deleted, its secret rotated or
	// one of its deliveries replayed (they decide where the account's events go).
	AuditWebhookChanged AuditKind = "WEBHOOK_ENDPOINT_CHANGED"
)

// Admin is the actor of the admin commands, run by whoever can write the identity database on the
// machine (no key is involved).
var Admin = Principal{Role: "admin", Name: "admin command"}

// AuditEvent is one entry of an account's audit log: who (the key, its role and name), what (kind,
// resource and a short detail, never a secret), when. It is written in the same transaction as
// the action, so an action without its entry (or the reverse) cannot happen.
type AuditEvent struct {
	ID         string    `db:"audit_id"`
	AccountID  string    `db:"account_id"`
	CreateTime int64     `db:"create_time"`
	Kind       AuditKind `db:"kind"`
	ActorKeyID string    `db:"actor_key_id"`
	ActorRole  string    `db:"actor_role"`
	ActorName  string    `db:"actor_name"`
	Resource   string    `db:"resource"`
	Detail     string    `db:"detail"`
}

// NewAuditEvent makes the entry for an action by who on account's resource at now.
func NewAuditEvent(now time.Time, account string, kind AuditKind, who Principal, resource, detail string) AuditEvent {
	return AuditEvent{
		ID: ids.New(ids.AuditEvent, now), AccountID: account, CreateTime: db.Micros(now), Kind: kind,
		ActorKeyID: who.KeyID, ActorRole: string(who.Role), ActorName: who.Name, Resource: resource, Detail: detail,
	}
}

// InsertAudit writes e in tx. Both the identity database and the lifecycle database have an
// audit_events table of this shape.
func InsertAudit(tx *db.Tx, e AuditEvent) error {
	_, err := tx.NamedExec(`INSERT INTO audit_events (audit_id, account_id, create_time, kind, actor_key_id, actor_role, actor_name, resource, detail)
		VALUES (:audit_id, :account_id, :create_time, :kind, :actor_key_id, :actor_role, :actor_name, :resource, :detail)`, e)
	return err
}

// AuditFilter selects an account's audit events.
type AuditFilter struct {
	AccountID string
	Kinds     []AuditKind // empty: every kind
	// Start and End (micros) bound create_time: Start <= t < End; zero: unbounded.
	Start, End int64
}

// ListAudit returns up to limit events of d matching f, newest first, before audit id `before`
// (empty: from the newest).
func ListAudit(ctx context.Context, d *db.DB, f AuditFilter, before string, limit int) ([]AuditEvent, error) {
	q := `SELECT audit_id, account_id, create_time, kind, actor_key_id, actor_role, actor_name, resource, detail
		FROM audit_events WHERE account_id = ?`
	args := []any{f.AccountID}
	if len(f.Kinds) > 0 {
		q += ` AND kind IN (` + db.Placeholders(len(f.Kinds)) + `)`
		for _, k := range f.Kinds {
			args = append(args, string(k))
		}
	}
	if f.Start != 0 {
		q += ` AND create_time >= ?`
		args = append(args, f.Start)
	}
	if f.End != 0 {
		q += ` AND create_time < ?`
		args = append(args, f.End)
	}
	if before != "" {
		q += ` AND audit_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY audit_id DESC LIMIT ?`
	args = append(args, limit)
	var es []AuditEvent
	err := d.Select(ctx, &es, q, args...)
	return es, err
}

// MergeAudit merges lists each sorted newest first into one, newest first, of at most limit.
func MergeAudit(limit int, lists ...[]AuditEvent) []AuditEvent {
	var out []AuditEvent
	for _, l := range lists {
		out = append(out, l...)
	}
	// Newest first by id; ids are ULIDs, so this is time order (ties within a millisecond across
	// the two databases are ordered by their random part, consistently on every page).
	slices.SortFunc(out, func(a, b AuditEvent) int { return strings.Compare(b.ID, a.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// ListAudit lists the identity database's audit events (key and admin actions).
func (s *Store) ListAudit(ctx context.Context, f AuditFilter, before string, limit int) ([]AuditEvent, error) {
	return ListAudit(ctx, s.db, f, before, limit)
}
