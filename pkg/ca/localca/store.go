package localca

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
)

//go:embed migrations/*.sql migrations/postgres/*.sql
var migrationFiles embed.FS

// Migrations are the local CA database's schema migrations.
func Migrations() fs.FS { return db.MigrationsIn(migrationFiles) }

// Application states, as stored.
const (
	statePending   = "PENDING"
	stateIssued    = "ISSUED"
	stateRejected  = "REJECTED"
	stateCancelled = "CANCELLED"
)

// application is one application, decoded.
type application struct {
	Ref               string
	RequestID         string
	Domains           []string
	CSR               []byte
	Validation        string
	Organization      *ca.Organization
	Contact           ca.Contact
	RequestedNotAfter time.Time
	RequestedLifetime time.Duration
	Instructions      []ca.DNSRecord
	State             string
	Reason            string
	Message           string
	Serial            string
	ChainPEM          string
	CreateTime        time.Time
	DecideTime        time.Time
}

// appRow is an applications row as stored.
type appRow struct {
	Ref               string         `db:"ref"`
	RequestID         string         `db:"request_id"`
	Domains           string         `db:"domains"`
	CSR               []byte         `db:"csr"`
	Validation        string         `db:"validation"`
	Organization      sql.NullString `db:"organization"`
	Contact           string         `db:"contact"`
	RequestedNotAfter sql.NullInt64  `db:"requested_not_after"`
	RequestedLifetime sql.NullInt64  `db:"requested_lifetime"`
	Instructions      string         `db:"instructions"`
	State             string         `db:"state"`
	Reason            sql.NullString `db:"reason"`
	Message           sql.NullString `db:"message"`
	Serial            sql.NullString `db:"serial"`
	ChainPEM          sql.NullString `db:"chain_pem"`
	CreateTime        int64          `db:"create_time"`
	DecideTime        sql.NullInt64  `db:"decide_time"`
}

const appColumns = `ref, request_id, domains, csr, validation, organization, contact, requested_not_after, requested_lifetime,
	instructions, state, reason, message, serial, chain_pem, create_time, decide_time`

func toRow(a application) (appRow, error) {
	domains, err := json.Marshal(a.Domains)
	if err != nil {
		return appRow{}, err
	}
	contact, err := json.Marshal(a.Contact)
	if err != nil {
		return appRow{}, err
	}
	instr, err := json.Marshal(a.Instructions)
	if err != nil {
		return appRow{}, err
	}
	r := appRow{
		Ref: a.Ref, RequestID: a.RequestID, Domains: string(domains), CSR: a.CSR, Validation: a.Validation,
		Contact: string(contact), RequestedNotAfter: db.NullMicros(a.RequestedNotAfter), Instructions: string(instr),
		RequestedLifetime: sql.NullInt64{Int64: int64(a.RequestedLifetime / time.Second), Valid: a.RequestedLifetime > 0},
		State:             a.State, Reason: nullString(a.Reason), Message: nullString(a.Message), Serial: nullString(a.Serial),
		ChainPEM: nullString(a.ChainPEM), CreateTime: db.Micros(a.CreateTime), DecideTime: db.NullMicros(a.DecideTime),
	}
	if a.Organization != nil {
		org, err := json.Marshal(a.Organization)
		if err != nil {
			return appRow{}, err
		}
		r.Organization = nullString(string(org))
	}
	return r, nil
}

func (r appRow) application() (application, error) {
	a := application{
		Ref: r.Ref, RequestID: r.RequestID, CSR: r.CSR, Validation: r.Validation,
		RequestedNotAfter: db.FromNullMicros(r.RequestedNotAfter), State: r.State, Reason: r.Reason.String,
		RequestedLifetime: time.Duration(r.RequestedLifetime.Int64) * time.Second,
		Message:           r.Message.String, Serial: r.Serial.String, ChainPEM: r.ChainPEM.String,
		CreateTime: db.FromMicros(r.CreateTime), DecideTime: db.FromNullMicros(r.DecideTime),
	}
	err := errors.Join(
		json.Unmarshal([]byte(r.Domains), &a.Domains),
		json.Unmarshal([]byte(r.Contact), &a.Contact),
		json.Unmarshal([]byte(r.Instructions), &a.Instructions),
	)
	if r.Organization.Valid {
		err = errors.Join(err, json.Unmarshal([]byte(r.Organization.String), &a.Organization))
	}
	if err != nil {
		return application{}, fmt.Errorf("application %s: %w", r.Ref, err)
	}
	return a, nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// store is the local CA's SQL; it is the only code that knows the tables.
type store struct {
	db *db.DB
}

// issuerRow is an issuers row.
type issuerRow struct {
	Name           string `db:"name"`
	CertificatePEM string `db:"certificate_pem"`
	SealedKey      string `db:"sealed_key"`
	CreateTime     int64  `db:"create_time"`
}

// secretRow is a sealed_secrets row.
type secretRow struct {
	Name        string `db:"name"`
	SealedValue string `db:"sealed_value"`
	CreateTime  int64  `db:"create_time"`
}

// keys returns the stored issuers by name and the stored secrets by name.
func (s *store) keys(ctx context.Context) (map[string]issuerRow, map[string]secretRow, error) {
	var is []issuerRow
	if err := s.db.Select(ctx, &is, `SELECT name, certificate_pem, sealed_key, create_time FROM issuers`); err != nil {
		return nil, nil, err
	}
	var ss []secretRow
	if err := s.db.Select(ctx, &ss, `SELECT name, sealed_value, create_time FROM sealed_secrets`); err != nil {
		return nil, nil, err
	}
	issuers, secrets := map[string]issuerRow{}, map[string]secretRow{}
	for _, r := range is {
		issuers[r.Name] = r
	}
	for _, r := range ss {
		secrets[r.Name] = r
	}
	return issuers, secrets, nil
}

// initKeys stores a new hierarchy and secret, all or nothing, unless keys are there already (a
// process that opened the same database at the same moment got there first): then the caller
// reads theirs.
func (s *store) initKeys(ctx context.Context, issuers []issuerRow, secrets []secretRow) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		var n int
		if err := tx.Get(&n, `SELECT COUNT(*) FROM issuers`); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		for _, r := range issuers {
			if _, err := tx.NamedExec(`INSERT INTO issuers (name, certificate_pem, sealed_key, create_time)
				VALUES (:name, :certificate_pem, :sealed_key, :create_time)`, r); err != nil {
				return err
			}
		}
		for _, r := range secrets {
			if _, err := tx.NamedExec(`INSERT INTO sealed_secrets (name, sealed_value, create_time)
				VALUES (:name, :sealed_value, :create_time)`, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// errNoApplication is returned for a ref the CA does not know.
var errNoApplication = errors.New("localca: no such application")

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
		_, err = tx.NamedExec(`INSERT INTO applications (`+appColumns+`) VALUES (:ref, :request_id, :domains, :csr,
			:validation, :organization, :contact, :requested_not_after, :requested_lifetime, :instructions, :state, :reason, :message,
			:serial, :chain_pem, :create_time, :decide_time)`, row)
		out = row
		return err
	})
	if err != nil {
		return application{}, err
	}
	return out.application()
}

// validated returns the names of the records already seen for an application.
func (s *store) validated(ctx context.Context, ref string) (names []string, err error) {
	err = s.db.Select(ctx, &names, `SELECT record_name FROM validations WHERE ref = ? ORDER BY record_name`, ref)
	return names, err
}

// addValidations records records seen for an application.
func (s *store) addValidations(ctx context.Context, ref string, names []string, t time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		for _, n := range names {
			if _, err := tx.Exec(`INSERT INTO validations (ref, record_name, validate_time) VALUES (?, ?, ?)
				ON CONFLICT (ref, record_name) DO NOTHING`, ref, n, db.Micros(t)); err != nil {
				return err
			}
		}
		return nil
	})
}

// decide moves a PENDING application to REJECTED or CANCELLED; db.ErrConflict when it is no
// longer pending (decided meanwhile by another poll or a Cancel).
func (s *store) decide(ctx context.Context, ref, state string, reason ca.Reason, message string, t time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		return db.ExpectOne(tx.Exec(`UPDATE applications SET state = ?, reason = ?, message = ?, decide_time = ?
			WHERE ref = ? AND state = ?`, state, nullString(string(reason)), nullString(message), db.Micros(t), ref, statePending))
	})
}

// issued is a certificate signed for an application.
type issued struct {
	Serial    string
	CertPEM   string
	ChainPEM  string
	NotBefore time.Time
	NotAfter  time.Time
}

// recordIssued moves a PENDING application to ISSUED and records its certificate, in one
// transaction; db.ErrConflict when it is no longer pending (the certificate is then discarded,
// never having left the process).
func (s *store) recordIssued(ctx context.Context, ref string, c issued, t time.Time) error {
	return s.db.Write(ctx, func(tx *db.Tx) error {
		if err := db.ExpectOne(tx.Exec(`UPDATE applications SET state = ?, serial = ?, chain_pem = ?, decide_time = ?
			WHERE ref = ? AND state = ?`, stateIssued, c.Serial, c.ChainPEM, db.Micros(t), ref, statePending)); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO certificates (serial, ref, certificate_pem, not_before, not_after, create_time)
			VALUES (?, ?, ?, ?, ?, ?)`, c.Serial, ref, c.CertPEM, db.Micros(c.NotBefore), db.Micros(c.NotAfter), db.Micros(t))
		return err
	})
}
