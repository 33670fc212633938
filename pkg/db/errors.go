package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
)

// Error classification, for both dialects, in one place. Three questions the callers ask:
//
//   - IsUniqueViolation: an INSERT met a unique or primary key constraint (an idempotent create
//     finds its earlier self; a guard index refuses a second row).
//   - IsRetryable: the transaction lost a race it may win if run again: PostgreSQL's serialization
//     failure (40001) and deadlock (40P01), SQLite's BUSY and LOCKED. Write retries these itself.
//   - IsUnavailable: the database could not be reached, or went away mid-call (connection refused
//     or reset, server shutting down or starting up, too many connections). The gRPC servers
//     answer Unavailable for it, which clients retry; it is never a client's mistake, nor Internal.

// PostgreSQL error codes (SQLSTATE) the classification uses.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgAdminShutdown        = "57P01"
	pgCrashShutdown        = "57P02"
	pgCannotConnectNow     = "57P03"
	pgTooManyConnections   = "53300"
)

// IsUniqueViolation reports whether err is a unique or primary-key constraint violation.
func IsUniqueViolation(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey
	}
	return pgCode(err) == pgUniqueViolation
}

// IsRetryable reports whether err is a transaction's lost race, worth running it again.
func IsRetryable(err error) bool {
	var se sqlite3.Error
	if errors.As(err, &se) {
		return se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked
	}
	switch pgCode(err) {
	case pgSerializationFailure, pgDeadlockDetected:
		return true
	}
	return false
}

// IsUnavailable reports whether err says the database cannot be reached now.
func IsUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch code := pgCode(err); {
	case code == pgAdminShutdown, code == pgCrashShutdown, code == pgCannotConnectNow, code == pgTooManyConnections:
		return true
	case len(code) == 5 && code[:2] == "08": // connection exception
		return true
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
