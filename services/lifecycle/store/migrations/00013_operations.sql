-- +goose Up
-- Operators' long-running operations (OperationsService): today the mass re-issue. The selector's
-- unset fields are empty strings (issued_before 0). after_id is the last certificate_id looked at:
-- the operation walks the hosted certificates in certificate_id order, and every re-issue
-- advances it in the same transaction that starts the renewal, so a restart neither repeats nor
-- skips one.
CREATE TABLE operations (
    operation_id     TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL,
    sel_ca           TEXT NOT NULL,
    sel_issuer       TEXT NOT NULL,
    sel_issued_before BIGINT NOT NULL,
    sel_account_id   TEXT NOT NULL,
    rate_per_second  DOUBLE PRECISION NOT NULL,
    state            TEXT NOT NULL,
    after_id         TEXT NOT NULL,
    matched          BIGINT NOT NULL,
    processed        BIGINT NOT NULL,
    started          BIGINT NOT NULL,
    skipped          BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    create_time      BIGINT NOT NULL,
    update_time      BIGINT NOT NULL
);

CREATE INDEX operations_state ON operations (state, operation_id);

-- +goose Down
DROP TABLE operations;
