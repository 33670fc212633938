package store

import (
	"context"
	"database/sql"
	"errors"

	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/lifecycle/state"
)

// Operation states.
const (
	OpRunning   = "RUNNING"
	OpPaused    = "PAUSED"
	OpCancelled = "CANCELLED"
	OpSucceeded = "SUCCEEDED"
)

// OpReissue is the kind of a mass re-issue operation.
const OpReissue = "REISSUE"

// ReissueSelector chooses hosted certificates; empty fields (IssuedBefore 0) match everything.
type ReissueSelector struct {
	CA           string `db:"sel_ca"`
	Issuer       string `db:"sel_issuer"`
	IssuedBefore int64  `db:"sel_issued_before"` // micros
	AccountID    string `db:"sel_account_id"`
}

// Operation is an operator's long-running operation (table operations).
type Operation struct {
	ID        string `db:"operation_id"`
	RequestID string `db:"request_id"`
	Kind      string `db:"kind"`
	ReissueSelector
	Rate       float64 `db:"rate_per_second"`
	State      string  `db:"state"`
	AfterID    string  `db:"after_id"`
	Matched    int64   `db:"matched"`
	Processed  int64   `db:"processed"`
	Started    int64   `db:"started"`
	Skipped    int64   `db:"skipped"`
	CreatedBy  string  `db:"created_by"`
	CreateTime int64   `db:"create_time"`
	UpdateTime int64   `db:"update_time"`
}

// Done reports whether the operation's state is final.
func (o Operation) Done() bool { return o.State == OpCancelled || o.State == OpSucceeded }

const operationColumns = `operation_id, request_id, kind, sel_ca, sel_issuer, sel_issued_before, sel_account_id,
	rate_per_second, state, after_id, matched, processed, started, skipped, created_by, create_time, update_time`

// ReissueCandidate is a hosted certificate an operation may re-issue, with what its selector
// cannot check in SQL (the issuer, which is read from the chain).
type ReissueCandidate struct {
	CertificateID string `db:"certificate_id"`
	AccountID     string `db:"account_id"`
	ChainPEM      string `db:"chain_pem"`
}

// reissueWhere is the selector as SQL over certificates c, issuances i and applications a: the
// HOSTED certificates (which only hosted bundles have) after afterID, in certificate_id order.
func reissueWhere(sel ReissueSelector, afterID string) (string, []any) {
	q := ` FROM certificates c JOIN issuances i ON i.issuance_id = c.current_issuance_id
		JOIN applications a ON a.application_id = i.application_id
		WHERE c.state = ? AND c.certificate_id > ?`
	args := []any{string(state.Hosted), afterID}
	if sel.AccountID != "" {
		q += ` AND c.account_id = ?`
		args = append(args, sel.AccountID)
	}
	if sel.CA != "" {
		q += ` AND a.ca_name = ?`
		args = append(args, sel.CA)
	}
	if sel.IssuedBefore != 0 {
		q += ` AND i.not_before < ?`
		args = append(args, sel.IssuedBefore)
	}
	return q, args
}

// CountReissue counts the hosted certificates the selector's SQL part matches.
func (s *Store) CountReissue(ctx context.Context, sel ReissueSelector) (int64, error) {
	where, args := reissueWhere(sel, "")
	var n int64
	err := s.db.Get(ctx, &n, `SELECT COUNT(*)`+where, args...)
	return n, err
}

// ReissueCandidates returns up to limit hosted certificates after afterID that the selector's SQL
// part matches, in certificate_id order. The chain is read only when withChain (an issuer
// selector) asks for it.
func (s *Store) ReissueCandidates(ctx context.Context, sel ReissueSelector, afterID string, limit int, withChain bool) ([]ReissueCandidate, error) {
	where, args := reissueWhere(sel, afterID)
	chain := `'' AS chain_pem`
	if withChain {
		chain = `i.chain_pem`
	}
	var out []ReissueCandidate
	err := s.db.Select(ctx, &out, `SELECT c.certificate_id, c.account_id, `+chain+where+` ORDER BY c.certificate_id LIMIT ?`,
		append(args, limit)...)
	return out, err
}

// CreateOperation inserts op, or returns the operation made for the same request_id (created
// false), which the caller compares with what it asked for.
func (s *Store) CreateOperation(ctx context.Context, op Operation) (out Operation, created bool, err error) {
	err = s.db.Write(ctx, func(tx *db.Tx) error {
		res, err := tx.NamedExec(`INSERT INTO operations (`+operationColumns+`) VALUES (:operation_id, :request_id, :kind,
			:sel_ca, :sel_issuer, :sel_issued_before, :sel_account_id, :rate_per_second, :state, :after_id, :matched,
			:processed, :started, :skipped, :created_by, :create_time, :update_time) ON CONFLICT DO NOTHING`, op)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			out, created = op, true
			return nil
		}
		return tx.Get(&out, `SELECT `+operationColumns+` FROM operations WHERE request_id = ?`, op.RequestID)
	})
	return out, created, err
}

// GetOperation returns an operation, or NotFound.
func (s *Store) GetOperation(ctx context.Context, id string) (Operation, error) {
	var op Operation
	err := s.db.Get(ctx, &op, `SELECT `+operationColumns+` FROM operations WHERE operation_id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Operation{}, apierr.NotFound("operation", id)
	}
	return op, err
}

// ListOperations returns operations newest first, before the id before (when not empty), in
// state opState (when not empty).
func (s *Store) ListOperations(ctx context.Context, opState, before string, limit int) ([]Operation, error) {
	q := `SELECT ` + operationColumns + ` FROM operations WHERE 1 = 1`
	var args []any
	if opState != "" {
		q += ` AND state = ?`
		args = append(args, opState)
	}
	if before != "" {
		q += ` AND operation_id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY operation_id DESC LIMIT ?`
	var out []Operation
	err := s.db.Select(ctx, &out, q, append(args, limit)...)
	return out, err
}

// RunningOperations returns the operations in state RUNNING, oldest first.
func (s *Store) RunningOperations(ctx context.Context) ([]Operation, error) {
	var out []Operation
	err := s.db.Select(ctx, &out, `SELECT `+operationColumns+` FROM operations WHERE state = ? ORDER BY operation_id`, OpRunning)
	return out, err
}

// SetOperationState moves an operation to state to, at now, with change deciding from the stored
// operation: it returns the new state (the stored one to change nothing) or an error.
func (s *Store) SetOperationState(ctx context.Context, id string, now int64, change func(Operation) (string, error)) (Operation, error) {
	var op Operation
	err := s.db.Write(ctx, func(tx *db.Tx) error {
		err := tx.Get(&op, `SELECT `+operationColumns+` FROM operations WHERE operation_id = ?`, id)
		if errors.Is(err, sql.ErrNoRows) {
			return apierr.NotFound("operation", id)
		}
		if err != nil {
			return err
		}
		to, err := change(op)
		if err != nil || to == op.State {
			return err
		}
		op.State, op.UpdateTime = to, now
		_, err = tx.Exec(`UPDATE operations SET state = ?, update_time = ? WHERE operation_id = ?`, to, now, id)
		return err
	})
	return op, err
}

// AdvanceOperation records, in this transaction, that the operation looked at the certificates up
// to afterID (processed of them), starting started renewals and skipping skipped; finished marks it
// SUCCEEDED. It is a compare-and-set on the operation's cursor and state: when another replica (or
// a pause or cancel) got there first it answers db.ErrConflict and the caller's transaction rolls
// back, renewals included.
func (t *Tx) AdvanceOperation(op *Operation, afterID string, processed, started, skipped int64, finished bool) error {
	st := op.State
	if finished {
		st = OpSucceeded
	}
	err := db.ExpectOne(t.tx.Exec(`UPDATE operations SET after_id = ?, processed = processed + ?, started = started + ?,
		skipped = skipped + ?, state = ?, update_time = ? WHERE operation_id = ? AND after_id = ? AND state = ?`,
		afterID, processed, started, skipped, st, t.now, op.ID, op.AfterID, OpRunning))
	if err != nil {
		return err
	}
	op.AfterID, op.State, op.UpdateTime = afterID, st, t.now
	op.Processed, op.Started, op.Skipped = op.Processed+processed, op.Started+started, op.Skipped+skipped
	return nil
}
