package db

import (
	"database/sql"
	"time"
)

// Times are stored as BIGINT microseconds since the Unix epoch, UTC: the same type, ordering and
// index behaviour on SQLite and PostgreSQL, and no driver-specific time parsing.

// Micros is t as stored.
func Micros(t time.Time) int64 { return t.UTC().UnixMicro() }

// FromMicros is the time a stored value stands for, in UTC.
func FromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// NullMicros is t as stored, or NULL for the zero time.
func NullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: Micros(t), Valid: true}
}

// FromNullMicros is the time a nullable stored value stands for; the zero time for NULL.
func FromNullMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return FromMicros(v.Int64)
}
