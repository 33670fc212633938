-- +goose Up
-- The trace (a W3C traceparent) of what made each application (a renewal, a customer's call), so
-- that the ticker's later calls to the CA for it continue that trace (pkg/tracing); empty when
-- tracing is off.
ALTER TABLE applications ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE applications DROP COLUMN trace_context;
