// Package store is the order service's SQL: products, orders and the outbox. It speaks models;
// the server converts them to and from protos. It is the only package that knows the order
// database's tables.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"time"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the order database's schema migrations.
func Migrations() fs.FS { return db.MigrationsIn(migrationFiles) }

// DBOptions are the options the order database opens with: its migrations, and serial writes on
// PostgreSQL (db.Options.SerialWrites, locking the orders table). Concurrent SERIALIZABLE
// purchases conflict through the indexes they share (the request-id lookup, the outbox's due
// order) more often than retries absorb under load; one writer at a time, as on SQLite, answers
// every call without a lost race.
func DBOptions() db.Options { return db.Options{Migrations: Migrations(), SerialWrites: "orders"} }

// Order statuses, as stored.
const (
	StatusUnpaid    = "UNPAID"
	StatusPaid      = "PAID"
	StatusCancelled = "CANCELLED"
	StatusRefunded  = "REFUNDED"
)

// Refund statuses, as stored in orders.refund_status (NULL: none asked for).
const (
	RefundRequested = "REQUESTED"
	RefundRefunded  = "REFUNDED"
	RefundRefused   = "REFUSED"
)

// RefundWindow is how long after its payment an order can be refunded.
const RefundWindow = 30 * 24 * time.Hour

// Outbox message kinds: what the message asks the lifecycle service for.
const (
	// OutboxKindCreateBundle asks for a paid order's bundle.
	OutboxKindCreateBundle = "lifecycle.CreateBundle"
	// OutboxKindCancelBundle asks for a refunded order's bundle to be cancelled.
	OutboxKindCancelBundle = "lifecycle.CancelBundle"
)

// Product is one catalog entry.
type Product struct {
	ID               string `db:"product_id"`
	Position         int    `db:"position"`
	DisplayName      string `db:"display_name"`
	Brand            string `db:"brand"`
	ValidationType   string `db:"validation_type"`
	DomainType       string `db:"domain_type"`
	MaxDomains       int    `db:"max_domains"`
	CurrencyCode     string `db:"currency_code"`
	YearlyPriceMinor int64  `db:"yearly_price_minor"`
}

// Order is one order row.
type Order struct {
	ID                 string         `db:"order_id"`
	AccountID          string         `db:"account_id"`
	RequestID          string         `db:"request_id"`
	Status             string         `db:"status"`
	ProductID          string         `db:"product_id"`
	ValidationType     string         `db:"validation_type"`
	DomainType         string         `db:"domain_type"`
	DomainCount        int            `db:"domain_count"`
	SubscriptionYears  int            `db:"subscription_years"`
	Hosting            bool           `db:"hosting"`
	CurrencyCode       string         `db:"currency_code"`
	TotalMinor         int64          `db:"total_minor"`
	PaymentReference   sql.NullString `db:"payment_reference"`
	BundleID           sql.NullString `db:"bundle_id"`
	CertificateIDs     sql.NullString `db:"certificate_ids"`
	CreateTime         int64          `db:"create_time"`
	PayTime            sql.NullInt64  `db:"pay_time"`
	CancelTime         sql.NullInt64  `db:"cancel_time"`
	BundleDeliveryTime sql.NullInt64  `db:"bundle_delivery_time"`
	RefundStatus       sql.NullString `db:"refund_status"`
	RefundRequestTime  sql.NullInt64  `db:"refund_request_time"`
	RefundTime         sql.NullInt64  `db:"refund_time"`
	RefundMessage      sql.NullString `db:"refund_message"`
}

// Certificates decodes the certificate ids the lifecycle service acknowledged.
func (o *Order) Certificates() []string {
	if !o.CertificateIDs.Valid {
		return nil
	}
	var out []string
	_ = json.Unmarshal([]byte(o.CertificateIDs.String), &out)
	return out
}

const orderColumns = `order_id, account_id, request_id, status, product_id, validation_type, domain_type,
	domain_count, subscription_years, hosting, currency_code, total_minor, payment_reference, bundle_id,
	certificate_ids, create_time, pay_time, cancel_time, bundle_delivery_time, refund_status, refund_request_time,
	refund_time, refund_message`

// Store is the order database.
type Store struct {
	db *db.DB
}

// New wraps an opened database.
func New(d *db.DB) *Store { return &Store{db: d} }

// Products returns the catalog in display order.
func (s *Store) Products(ctx context.Context) ([]Product, error) {
	var ps []Product
	err := s.db.Select(ctx, &ps, `SELECT product_id, position, display_name, brand, validation_type, domain_type,
		max_domains, currency_code, yearly_price_minor FROM products ORDER BY position`)
	return ps, err
}

// CreateOrder inserts o unless the account already has an order with o's request id, in which
// case it returns that order (same parameters) or AlreadyExists (other parameters). The insert
// comes first and the existing order is read only when it changed nothing: a retried call is the
// rare case, and every purchase takes this path on the service's one writer goroutine.
func (s *Store) CreateOrder(ctx context.Context, o Order) (Order, error) {
	var out Order
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		res, err := tx.NamedExec(`INSERT INTO orders (`+orderColumns+`) VALUES (:order_id, :account_id, :request_id,
			:status, :product_id, :validation_type, :domain_type, :domain_count, :subscription_years, :hosting,
			:currency_code, :total_minor, :payment_reference, :bundle_id, :certificate_ids, :create_time, :pay_time,
			:cancel_time, :bundle_delivery_time, :refund_status, :refund_request_time, :refund_time, :refund_message)
			ON CONFLICT (account_id, request_id) DO NOTHING`, o)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			out = o
			return err
		}
		if err := tx.Get(&out, `SELECT `+orderColumns+` FROM orders WHERE account_id = ? AND request_id = ?`, o.AccountID, o.RequestID); err != nil {
			return err
		}
		if out.ProductID != o.ProductID || out.DomainCount != o.DomainCount ||
			out.SubscriptionYears != o.SubscriptionYears || out.Hosting != o.Hosting {
			return apierr.AlreadyExists("request_id", "%q was already used for order %s with other parameters", o.RequestID, out.ID)
		}
		return nil
	})
	return out, err
}

// GetOrder returns an order of the account, or NotFound.
func (s *Store) GetOrder(ctx context.Context, accountID, orderID string) (Order, error) {
	var o Order
	err := s.db.Get(ctx, &o, `SELECT `+orderColumns+` FROM orders WHERE order_id = ? AND account_id = ?`, orderID, accountID)
	if errors.Is(err, sql.ErrNoRows) {
		return Order{}, apierr.NotFound("order", orderID)
	}
	return o, err
}

// ListOrders returns up to limit orders of the account, newest first, after the order id
// `before` (exclusive; empty for the first page), optionally of one status.
func (s *Store) ListOrders(ctx context.Context, accountID, status, before string, limit int) ([]Order, error) {
	q := `SELECT ` + orderColumns + ` FROM orders WHERE account_id = ?`
	args := []any{accountID}
	if status != "" {
		q += ` AND status = ?`
		args = append(args, status)
	}
	if before != "" {
		q += ` AND order_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY order_id DESC LIMIT ?`
	args = append(args, limit)
	var os []Order
	err := s.db.Select(ctx, &os, q, args...)
	return os, err
}

// Payment is what PayOrder records.
type Payment struct {
	AccountID, OrderID, Reference, BundleID string
	Time                                    time.Time
	// Outbox builds the outbox payload for the order being paid; it runs inside the transaction,
	// after the order was read, so the payload describes exactly the order that became PAID.
	Outbox func(o Order) (string, error)
	// TraceContext is the paying call's trace (a traceparent; empty when tracing is off), kept in
	// the outbox row so that the delivery continues it.
	TraceContext string
}

// PayOrder makes an UNPAID order PAID and queues its bundle in the outbox, in one transaction.
// Paying a PAID order with the same reference returns it unchanged (the outbox row written by
// the first payment, or its delivery, stands); another reference, or a CANCELLED order, is
// FailedPrecondition. afterCommit runs once a new payment is durable.
func (s *Store) PayOrder(ctx context.Context, p Payment, afterCommit func()) (Order, error) {
	var out Order
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		if err := tx.Get(&out, `SELECT `+orderColumns+` FROM orders WHERE order_id = ? AND account_id = ?`, p.OrderID, p.AccountID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return apierr.NotFound("order", p.OrderID)
			}
			return err
		}
		switch out.Status {
		case StatusPaid:
			if out.PaymentReference.String == p.Reference {
				return nil
			}
			return apierr.FailedPrecondition("order %s is already PAID with another payment_reference", p.OrderID)
		case StatusCancelled:
			return apierr.FailedPrecondition("order %s is CANCELLED and cannot be paid", p.OrderID)
		}
		now := db.Micros(p.Time)
		if err := db.ExpectOne(tx.Exec(`UPDATE orders SET status = ?, payment_reference = ?, pay_time = ?, bundle_id = ?
			WHERE order_id = ? AND status = ?`, StatusPaid, p.Reference, now, p.BundleID, p.OrderID, StatusUnpaid)); err != nil {
			return err
		}
		out.Status, out.PaymentReference, out.PayTime, out.BundleID = StatusPaid,
			sql.NullString{String: p.Reference, Valid: true}, sql.NullInt64{Int64: now, Valid: true},
			sql.NullString{String: p.BundleID, Valid: true}
		payload, err := p.Outbox(out)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO outbox (message_id, kind, order_id, payload, next_attempt_time, create_time, trace_context)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, p.BundleID, OutboxKindCreateBundle, p.OrderID, payload, now, now, p.TraceContext); err != nil {
			return err
		}
		if afterCommit != nil {
			tx.AfterCommit(afterCommit)
		}
		return nil
	})
	return out, err
}

// CancelOrder makes an UNPAID order CANCELLED; a CANCELLED order is returned unchanged; a PAID
// one is FailedPrecondition.
func (s *Store) CancelOrder(ctx context.Context, accountID, orderID string, t time.Time) (Order, error) {
	var out Order
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		if err := tx.Get(&out, `SELECT `+orderColumns+` FROM orders WHERE order_id = ? AND account_id = ?`, orderID, accountID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return apierr.NotFound("order", orderID)
			}
			return err
		}
		switch out.Status {
		case StatusCancelled:
			return nil
		case StatusPaid:
			return apierr.FailedPrecondition("order %s is PAID; only UNPAID orders can be cancelled", orderID)
		}
		now := db.Micros(t)
		if err := db.ExpectOne(tx.Exec(`UPDATE orders SET status = ?, cancel_time = ? WHERE order_id = ? AND status = ?`,
			StatusCancelled, now, orderID, StatusUnpaid)); err != nil {
			return err
		}
		out.Status, out.CancelTime = StatusCancelled, sql.NullInt64{Int64: now, Valid: true}
		return nil
	})
	return out, err
}

// RequestRefund asks for the refund of a PAID order paid less than RefundWindow before t: the
// refund is REQUESTED and, in the same transaction, the outbox queues the cancellation of its bundle
// (payload, a lifecycle CancelBundleRequest) for the relay. An order whose refund is REQUESTED or
// REFUNDED is returned unchanged; one REFUSED may ask again (the lifecycle service decides again).
func (s *Store) RequestRefund(ctx context.Context, accountID, orderID string, t time.Time, payload func(Order) (string, error)) (Order, error) {
	var out Order
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		if err := tx.Get(&out, `SELECT `+orderColumns+` FROM orders WHERE order_id = ? AND account_id = ?`, orderID, accountID); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return apierr.NotFound("order", orderID)
			}
			return err
		}
		if out.Status == StatusRefunded || out.RefundStatus.String == RefundRequested {
			return nil
		}
		if out.Status != StatusPaid {
			return apierr.FailedPrecondition("order %s is %s; only a PAID order can be refunded", orderID, out.Status)
		}
		if paid := db.FromMicros(out.PayTime.Int64); !t.Before(paid.Add(RefundWindow)) {
			return apierr.FailedPrecondition("order %s was paid at %s; refunds are possible for 30 days after payment, until %s",
				orderID, paid.Format(time.RFC3339), paid.Add(RefundWindow).Format(time.RFC3339))
		}
		now := db.Micros(t)
		body, err := payload(out)
		if err != nil {
			return err
		}
		if err := db.ExpectOne(tx.Exec(`UPDATE orders SET refund_status = ?, refund_request_time = ?, refund_message = NULL
			WHERE order_id = ? AND status = ?`, RefundRequested, now, orderID, StatusPaid)); err != nil {
			return err
		}
		// One cancellation per request: a refund asked for again after a refusal is a new message.
		id := "cancel:" + out.BundleID.String + ":" + strconv.FormatInt(now, 10)
		if _, err := tx.Exec(`INSERT INTO outbox (message_id, kind, order_id, payload, next_attempt_time, create_time)
			VALUES (?, ?, ?, ?, ?, ?)`, id, OutboxKindCancelBundle, orderID, body, now, now); err != nil {
			return err
		}
		out.RefundStatus = sql.NullString{String: RefundRequested, Valid: true}
		out.RefundRequestTime, out.RefundMessage = sql.NullInt64{Int64: now, Valid: true}, sql.NullString{}
		return nil
	})
	return out, err
}

// OutboxMessage is one undelivered outbox row.
type OutboxMessage struct {
	ID              string         `db:"message_id"`
	Kind            string         `db:"kind"`
	OrderID         string         `db:"order_id"`
	Payload         string         `db:"payload"`
	Attempts        int            `db:"attempts"`
	NextAttemptTime int64          `db:"next_attempt_time"`
	LastError       sql.NullString `db:"last_error"`
	CreateTime      int64          `db:"create_time"` // when the order was paid
	TraceContext    string         `db:"trace_context"`
}

// DueOutbox returns up to limit messages whose next attempt is due at now, oldest due first.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int) ([]OutboxMessage, error) {
	return s.outbox(ctx, db.Micros(now), limit)
}

// ClaimOutbox claims up to limit messages due at now for one relay, oldest due first, and returns
// them. A claim is a lease: the messages' next attempt moves to now + lease in the transaction
// that reads them, so another relay (another replica of the service) does not take them while
// this one delivers; the outcome recorded afterwards (RecordDeliveries) replaces it. A relay that
// dies holding claims leaves them due again when the lease ends, for any relay to take over:
// delivery stays at least once, and CreateBundle is idempotent. The due rows are looked for on the
// read pool first, so a sweep with nothing due writes nothing.
func (s *Store) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]OutboxMessage, error) {
	if s.db.Dialect() == db.SQLite {
		// A SQLite file has one service process: nobody to share with, and a claim would only
		// hold up the relay's own deliveries for a lease after a crash and restart.
		return s.outbox(ctx, db.Micros(now), limit)
	}
	if due, err := s.outbox(ctx, db.Micros(now), 1); err != nil || len(due) == 0 {
		return nil, err
	}
	var claimed []OutboxMessage
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		claimed = nil
		if err := tx.Select(&claimed, `SELECT `+outboxColumns+` FROM outbox WHERE next_attempt_time <= ?
			ORDER BY next_attempt_time, message_id LIMIT ?`, db.Micros(now), limit); err != nil || len(claimed) == 0 {
			return err
		}
		ids := make([]any, 0, len(claimed)+2)
		ids = append(ids, db.Micros(now.Add(lease)), db.Micros(now))
		for _, m := range claimed {
			ids = append(ids, m.ID)
		}
		_, err := tx.Exec(`UPDATE outbox SET next_attempt_time = ? WHERE next_attempt_time <= ? AND message_id IN (`+
			db.Placeholders(len(claimed))+`)`, ids...)
		return err
	})
	return claimed, err
}

// ReleaseOutbox gives back claims (ClaimOutbox at now with lease) that a relay shutting down did
// not settle: each message is due again at its due time before the claim, for another relay at
// once. A message claimed again since (by a relay that found the lease ended) is left alone.
func (s *Store) ReleaseOutbox(ctx context.Context, claimed []OutboxMessage, now time.Time, lease time.Duration) error {
	if s.db.Dialect() == db.SQLite {
		return nil // ClaimOutbox claims nothing there
	}
	until := db.Micros(now.Add(lease))
	return s.db.Write(ctx, func(tx *db.Tx) error {
		for _, m := range claimed {
			if _, err := tx.Exec(`UPDATE outbox SET next_attempt_time = ? WHERE message_id = ? AND next_attempt_time = ?`,
				m.NextAttemptTime, m.ID, until); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingOutbox returns up to limit undelivered messages, due or not, soonest due first: the
// operator's view of deliveries that keep failing (`certhosting-order outbox`).
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]OutboxMessage, error) {
	return s.outbox(ctx, math.MaxInt64, limit)
}

const outboxColumns = `message_id, kind, order_id, payload, attempts, next_attempt_time, last_error, create_time, trace_context`

func (s *Store) outbox(ctx context.Context, dueBy int64, limit int) ([]OutboxMessage, error) {
	var ms []OutboxMessage
	err := s.db.Select(ctx, &ms, `SELECT `+outboxColumns+` FROM outbox WHERE next_attempt_time <= ?
		ORDER BY next_attempt_time, message_id LIMIT ?`, dueBy, limit)
	return ms, err
}

// RetryOutboxNow makes every undelivered message due at now, for an operator who has fixed what
// kept them failing and does not want to wait out their backoff. It returns how many it moved.
func (s *Store) RetryOutboxNow(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(`UPDATE outbox SET next_attempt_time = ? WHERE next_attempt_time > ?`, db.Micros(now), db.Micros(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// NextOutboxTime returns when the earliest undelivered message is due, or ok false when the
// outbox is empty.
func (s *Store) NextOutboxTime(ctx context.Context) (t time.Time, ok bool, err error) {
	var v sql.NullInt64
	if err := s.db.Get(ctx, &v, `SELECT MIN(next_attempt_time) FROM outbox`); err != nil {
		return time.Time{}, false, err
	}
	return db.FromNullMicros(v), v.Valid, nil
}

// Delivered is the outcome of one delivery the lifecycle service answered for good.
type Delivered struct {
	MessageID string
	OrderID   string
	Kind      string // the message's kind (empty: OutboxKindCreateBundle)
	// CertificateIDs are the created bundle's instances (OutboxKindCreateBundle).
	CertificateIDs []string
	// Refused is the lifecycle service's reason for refusing a cancellation (OutboxKindCancelBundle);
	// empty when it cancelled the bundle.
	Refused string
}

// Failed is the outcome of one failed delivery attempt.
type Failed struct {
	MessageID string
	Attempts  int // attempts made so far, including this one
	Next      time.Time
	Err       string
}

// RecordDeliveries removes delivered messages, records their bundles on the orders, and
// reschedules failed ones, in one transaction. The relay records a whole sweep at once, so the
// delivered bundles are written set-wise: one DELETE and one UPDATE … FROM (VALUES …) per
// maxRecordRows messages rather than two statements each.
func (s *Store) RecordDeliveries(ctx context.Context, t time.Time, ok []Delivered, failed []Failed) error {
	now := db.Micros(t)
	return s.db.Write(ctx, func(tx *db.Tx) error {
		bundles := make([]Delivered, 0, len(ok))
		for _, d := range ok {
			if d.Kind != OutboxKindCancelBundle {
				bundles = append(bundles, d)
				continue
			}
			if _, err := tx.Exec(`DELETE FROM outbox WHERE message_id = ?`, d.MessageID); err != nil {
				return err
			}
			if err := recordRefund(tx, d, now); err != nil {
				return err
			}
		}
		for start := 0; start < len(bundles); start += maxRecordRows {
			if err := recordBundles(tx, bundles[start:min(start+maxRecordRows, len(bundles))], now); err != nil {
				return err
			}
		}
		for _, f := range failed {
			if _, err := tx.Exec(`UPDATE outbox SET attempts = ?, next_attempt_time = ?, last_error = ? WHERE message_id = ?`,
				f.Attempts, db.Micros(f.Next), f.Err, f.MessageID); err != nil {
				return err
			}
		}
		return nil
	})
}

// maxRecordRows bounds the deliveries recordBundles writes in one pair of statements (two
// parameters each, well inside SQLite's and PostgreSQL's limits).
const maxRecordRows = 500

// recordBundles removes delivered CreateBundle messages and stores each order's instances and
// delivery time.
func recordBundles(tx *db.Tx, ds []Delivered, now int64) error {
	ids := make([]any, len(ds))
	values := make([]any, 0, 1+2*len(ds))
	values = append(values, now)
	for i, d := range ds {
		certs, err := json.Marshal(d.CertificateIDs)
		if err != nil {
			return err
		}
		ids[i] = d.MessageID
		values = append(values, d.OrderID, string(certs))
	}
	if _, err := tx.Exec(`DELETE FROM outbox WHERE message_id IN (`+db.Placeholders(len(ids))+`)`, ids...); err != nil {
		return err
	}
	// A VALUES list names its columns column1, column2 in SQLite and PostgreSQL alike.
	if _, err := tx.Exec(`UPDATE orders SET certificate_ids = v.column2, bundle_delivery_time = ?
		FROM (VALUES `+db.Rows(len(ds), 2)+`) AS v
		WHERE orders.order_id = v.column1`, values...); err != nil {
		return fmt.Errorf("record deliveries of %d orders: %w", len(ds), err)
	}
	return nil
}

// recordRefund records the lifecycle service's answer to a cancellation: the order REFUNDED, or
// its refund REFUSED with the reason.
func recordRefund(tx *db.Tx, d Delivered, now int64) error {
	if d.Refused != "" {
		_, err := tx.Exec(`UPDATE orders SET refund_status = ?, refund_message = ? WHERE order_id = ? AND status = ?`,
			RefundRefused, d.Refused, d.OrderID, StatusPaid)
		return err
	}
	_, err := tx.Exec(`UPDATE orders SET status = ?, refund_status = ?, refund_time = ?, refund_message = NULL
		WHERE order_id = ? AND status = ?`, StatusRefunded, RefundRefunded, now, d.OrderID, StatusPaid)
	return err
}

// OutboxLen counts undelivered messages (for tests and the admin view).
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := s.db.Get(ctx, &n, `SELECT COUNT(*) FROM outbox`)
	return n, err
}

// OutboxBacklog counts undelivered messages and returns the oldest one's create_time (micros; 0
// when there is none), for the metrics.
func (s *Store) OutboxBacklog(ctx context.Context) (n int, oldest int64, err error) {
	var row struct {
		N      int           `db:"n"`
		Oldest sql.NullInt64 `db:"oldest"`
	}
	err = s.db.Get(ctx, &row, `SELECT COUNT(*) AS n, MIN(create_time) AS oldest FROM outbox`)
	return row.N, row.Oldest.Int64, err
}
