-- +goose Up
-- The audit log of what is done to an account's certificates: private key exports, hosting
-- changes, revocations and support actions, each written in the transaction of its action. Same
-- shape as the identity database's audit_events (key and admin actions); ListAuditEvents reads both.
CREATE TABLE audit_events (
    audit_id     TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    create_time  BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    actor_key_id TEXT NOT NULL,
    actor_role   TEXT NOT NULL,
    actor_name   TEXT NOT NULL,
    resource     TEXT NOT NULL,
    detail       TEXT NOT NULL
);

CREATE INDEX audit_events_account ON audit_events (account_id, audit_id);

-- +goose Down
DROP TABLE audit_events;
