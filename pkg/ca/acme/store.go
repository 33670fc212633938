package acme

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Migrations are the ACME client database's schema migrations.
func Migrations() fs.FS { return db.MigrationsIn(migrationFiles) }

// Application states, as stored.
const (
	statePending   = "PENDING"
	stateIssued    = "ISSUED"
	stateRejected  = "REJECTED"
	stateCancelled = "CANCELLED"
)

// published is one DNS-01 value put at a delegation target through Challenges.
type published struct {
	FQDN  string `json:"fqdn"`
	Value string `json:"value"`
}

// application is one application, decoded.
type application struct {
	Ref          string
	RequestID    string
	DirectoryURL string
	Domains      []string
	CSR          []byte
	Binding      string
	Instructions []ca.DNSRecord
	NotAfter     time.Time
	Replaces     string
	OrderURL     string
	Published    []published
	State        string
	Reason       string
	Message      string
	ChainPEM     string
	CreateTime   time.Time
	DecideTime   time.Time
}

// appRow is an applications row as stored.
type appRow struct {
	Ref          string         `db:"ref"`
	RequestID    string         `db:"request_id"`
	DirectoryURL string         `db:"directory_url"`
	Domains      string         `db:"domains"`
	CSR          []byte         `db:"csr"`
	Binding      string         `db:"binding"`
	Instructions string         `db:"instructions"`
	NotAfter     sql.NullInt64  `db:"not_after"`
	Replaces     sql.NullString `db:"replaces"`
	OrderURL     sql.NullString `db:"order_url"`
	Published    string         `db:"published"`
	State        string         `db:"state"`
	Reason       sql.NullString `db:"reason"`
	Message      sql.NullString `db:"message"`
	ChainPEM     sql.NullString `db:"chain_pem"`
	CreateTime   int64          `db:"create_time"`
	DecideTime   sql.NullInt64  `db:"decide_time"`
}

const appColumns = `ref, request_id, directory_url, domains, csr, binding, instructions, not_after, replaces,
	order_url, published, state, reason, message, chain_pem, create_time, decide_time`

func toRow(a application) (appRow, error) {
	domains, err1 := json.Marshal(a.Domains)
	instr, err2 := json.Marshal(a.Instructions)
	pub, err3 := marshalPublished(a.Published)
	if err := errors.Join(err1, err2, err3); err != nil {
		return appRow{}, err
	}
	return appRow{
		Ref: a.Ref, RequestID: a.RequestID, DirectoryURL: a.DirectoryURL, Domains: string(domains), CSR: a.CSR,
		Binding: a.Binding, Instructions: string(instr), NotAfter: db.NullMicros(a.NotAfter),
		Replaces: nullString(a.Replaces), OrderURL: nullString(a.OrderURL), Published: pub, State: a.State,
		Reason: nullString(a.Reason), Message: nullString(a.Message), ChainPEM: nullString(a.ChainPEM),
		CreateTime: db.Micros(a.CreateTime), DecideTime: db.NullMicros(a.DecideTime),
	}, nil
}

func (r appRow) application() (application, error) {
	a := application{
		Ref: r.Ref, RequestID: r.RequestID, DirectoryURL: r.DirectoryURL, CSR: r.CSR, Binding: r.Binding,
		NotAfter: db.FromNullMicros(r.NotAfter), Replaces: r.Replaces.String, OrderURL: r.OrderURL.String,
		State: r.State, Reason: r.Reason.String, Message: r.Message.String, ChainPEM: r.ChainPEM.String,
		CreateTime: db.FromMicros(r.CreateTime), DecideTime: db.FromNullMicros(r.DecideTime),
	}
	err := errors.Join(
		json.Unmarshal([]byte(r.Domains), &a.Domains),
		json.Unmarshal([]byte(r.Instructions), &a.Instructions),
		json.Unmarshal([]byte(r.Published), &a.Published),
	)
	if err != nil {
		return application{}, fmt.Errorf("application %s: %w", r.Ref, err)
	}
	return a, nil
}

// marshalPublished encodes a published list; an empty list is "[]", never "null".
func marshalPublished(p []published) (string, error) {
	if p == nil {
		p = []published{}
	}
	b, err := json.Marshal(p)
	return string(b), err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// store is the ACME client's SQL; it is the only code that knows the tables.
type store struct {
	db *db.DB
}

// accountRow is an accounts row.
type accountRow struct {
	DirectoryURL string         `db:"directory_url"`
	SealedKey    string         `db:"sealed_key"`
	AccountURL   sql.NullString `db:"account_url"`
	CreateTime   int64          `db:"create_time"`
	RegisterTime sql.NullInt64  `db:"register_time"`
}

// account reads the account of a directory; sql.ErrNoRows when there is none yet.
func (s *store) account(ctx context.Context, directoryURL string) (accountRow, error) {
	var r accountRow
	err := s.db.Get(ctx, &r, `SELECT directory_url, sealed_key, account_url, create_time, register_time
		FROM accounts WHERE directory_url = ?`, directoryURL)
	return r, err
}

// createAccount stores a new account key unless the directory has one already (a process that
// opened the database at the same moment stored first): the caller then reads theirs.
func (s *store) createAccount(ctx context.Context, r accountRow) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		_, err := tx.NamedExec(`INSERT INTO accounts (directory_url, sealed_key, create_time)
			VALUES (:directory_url, :sealed_key, :create_time) ON CONFLICT (directory_url) DO NOTHING`, r)
		return err
	})
}

// setAccountURL records the URL the CA gave the directory's account.
func (s *store) setAccountURL(ctx context.Context, directoryURL, accountURL string, t time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		return db.ExpectOne(tx.Exec(`UPDATE accounts SET account_url = ?, register_time = ? WHERE directory_url = ?`,
			accountURL, db.Micros(t), directoryURL))
	})
}

// forgetAccountURL clears the account URL if it is still accountURL (the CA said it does not know
// it), so that the next call registers the key again.
func (s *store) forgetAccountURL(ctx context.Context, directoryURL, accountURL string) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET account_url = NULL, register_time = NULL
			WHERE directory_url = ? AND account_url = ?`, directoryURL, accountURL)
		return err
	})
}

// errNoApplication is returned for a ref the client does not know.
var errNoApplication = errors.New("acme: no such application")

// application reads one application by ref.
func (s *store) application(ctx context.Context, ref string) (application, error) {
	var r appRow
	err := s.db.Get(ctx, &r, `SELECT `+appColumns+` FROM applications WHERE ref = ?`, ref)
	if errors.Is(err, sql.ErrNoRows) {
		return application{}, errNoApplication
	}
	if err != nil {
		return application{}, err
	}
	return r.application()
}

// createApplication inserts a unless an application with its request id exists, and returns the
// one stored: Submit's idempotency.
func (s *store) createApplication(ctx context.Context, a application) (application, error) {
	row, err := toRow(a)
	if err != nil {
		return application{}, err
	}
	var out appRow
	err = s.db.Write(ctx, func(tx *db.Tx) error {
		err := tx.Get(&out, `SELECT `+appColumns+` FROM applications WHERE request_id = ?`, a.RequestID)
		if !errors.Is(err, sql.ErrNoRows) {
			return err // found (nil) or failed
		}
		_, err = tx.NamedExec(`INSERT INTO applications (`+appColumns+`) VALUES (:ref, :request_id, :directory_url,
			:domains, :csr, :binding, :instructions, :not_after, :replaces, :order_url, :published, :state, :reason,
			:message, :chain_pem, :create_time, :decide_time)`, row)
		out = row
		return err
	})
	if err != nil {
		return application{}, err
	}
	return out.application()
}

// setOrder records the order created for a pending application that has none; db.ErrConflict
// when it has one already (a concurrent call created it first) or is decided.
func (s *store) setOrder(ctx context.Context, ref, orderURL string) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		return db.ExpectOne(tx.Exec(`UPDATE applications SET order_url = ?
			WHERE ref = ? AND state = ? AND order_url IS NULL`, orderURL, ref, statePending))
	})
}

// maxReorders is how many times an application's order may be replaced by a new one because the
// CA no longer had it. Once is the real case (the order expired during a long outage, or the CA
// lost its state); more than a few means the 404s come from something else, a proxy say.
const maxReorders = 3

// errTooManyReorders is dropOrder's refusal once an application has had maxReorders new orders.
var errTooManyReorders = fmt.Errorf("its order was replaced %d times already", maxReorders)

// dropOrder forgets the order of a pending application, so that the next advance creates a new
// one; db.ErrConflict when the application has another order by now or is decided, and
// errTooManyReorders when it has had maxReorders new orders.
func (s *store) dropOrder(ctx context.Context, ref, orderURL string) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		var n int
		err := tx.Get(&n, `SELECT reorders FROM applications WHERE ref = ? AND state = ? AND order_url = ?`, ref, statePending, orderURL)
		if errors.Is(err, sql.ErrNoRows) {
			return db.ErrConflict
		}
		if err != nil {
			return err
		}
		if n >= maxReorders {
			return errTooManyReorders
		}
		return db.ExpectOne(tx.Exec(`UPDATE applications SET order_url = NULL, reorders = reorders + 1
			WHERE ref = ? AND order_url = ?`, ref, orderURL))
	})
}

// changePublished adds and removes values in an application's published list, in one
// read-modify-write transaction.
func (s *store) changePublished(ctx context.Context, ref string, add, remove []published) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		var raw string
		if err := tx.Get(&raw, `SELECT published FROM applications WHERE ref = ?`, ref); err != nil {
			return err
		}
		var list []published
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			return fmt.Errorf("application %s: published: %w", ref, err)
		}
		for _, p := range add {
			if !slices.Contains(list, p) {
				list = append(list, p)
			}
		}
		list = slices.DeleteFunc(list, func(p published) bool { return slices.Contains(remove, p) })
		enc, err := marshalPublished(list)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`UPDATE applications SET published = ? WHERE ref = ?`, enc, ref)
		return err
	})
}

// decide moves a PENDING application to ISSUED (with its chain), REJECTED or CANCELLED;
// db.ErrConflict when it is no longer pending (decided meanwhile by another call).
func (s *store) decide(ctx context.Context, ref string, d decision, t time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		return db.ExpectOne(tx.Exec(`UPDATE applications SET state = ?, reason = ?, message = ?, chain_pem = ?, decide_time = ?
			WHERE ref = ? AND state = ?`, d.state, nullString(string(d.reason)), nullString(d.message),
			nullString(d.chainPEM), db.Micros(t), ref, statePending))
	})
}

// decision is what decide stores.
type decision struct {
	state    string
	reason   ca.Reason
	message  string
	chainPEM string
}
