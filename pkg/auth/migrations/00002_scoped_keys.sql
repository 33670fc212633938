-- +goose Up
-- Least-privilege keys: the customer role becomes owner (deployer and reader keys are new), a key
-- may expire, and a deployer or reader key may be limited to named bundles (comma-separated ids;
-- empty: the whole account).
UPDATE api_keys SET role = 'owner' WHERE role = 'customer';
ALTER TABLE api_keys ADD COLUMN expire_time BIGINT;
ALTER TABLE api_keys ADD COLUMN bundle_ids TEXT NOT NULL DEFAULT '';

-- The audit log of what happens to an account's keys (and admin commands). The lifecycle database
-- holds a table of the same shape for exports, hosting changes, revocations and support actions;
-- ListAuditEvents reads both. audit_id is a ULID, so its order is time order.
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
ALTER TABLE api_keys DROP COLUMN bundle_ids;
ALTER TABLE api_keys DROP COLUMN expire_time;
UPDATE api_keys SET role = 'customer' WHERE role = 'owner';
