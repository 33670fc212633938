-- +goose Up
-- The trace (a W3C traceparent) of the call that queued each outbox message, so that its delivery
-- continues that trace (pkg/tracing); empty when tracing is off.
ALTER TABLE outbox ADD COLUMN trace_context TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN trace_context;
