-- +goose Up
-- PostgreSQL's version of ../00001_acme.sql: the same schema, with BYTEA where SQLite says BLOB.
-- The ACME account of each directory this database has been used with: its private key, sealed
-- with the master key (pkg/secrets, bound to the directory URL), made once and kept, and the
-- account URL the CA gave it (NULL until the account is registered, and again after the CA said it
-- no longer knows the account, so the next call registers the same key anew).
CREATE TABLE accounts (
    directory_url TEXT PRIMARY KEY,
    sealed_key    TEXT NOT NULL,     -- PKCS #8 private key, sealed
    account_url   TEXT,
    create_time   BIGINT NOT NULL,
    register_time BIGINT
);

-- One row per application, keyed by the caller's request id (Submit's idempotency). The request
-- is kept (domains, CSR) because the order is finalized later, when a poll finds it ready.
-- order_url is NULL until the CA created the order (Submit failed before, or crashed: the next
-- Submit or Status creates it). published lists the DNS-01 values put at the delegation targets
-- and not removed yet. state is PENDING until decided: ISSUED, REJECTED (with reason and message)
-- or CANCELLED; a decided row changes only to clear published.
CREATE TABLE applications (
    ref           TEXT PRIMARY KEY,
    request_id    TEXT NOT NULL UNIQUE,
    directory_url TEXT NOT NULL,
    domains       TEXT NOT NULL,      -- JSON array, normalized (lower case)
    csr           BYTEA NOT NULL,     -- DER
    binding       TEXT NOT NULL,
    instructions  TEXT NOT NULL,      -- JSON array of the CNAMEs the customer publishes
    not_after     BIGINT,             -- the requested end, sent only when configured
    replaces      TEXT,               -- ARI certificate id of the certificate being replaced
    order_url     TEXT,
    published     TEXT NOT NULL,      -- JSON array of {fqdn, value}
    state         TEXT NOT NULL,
    reason        TEXT,
    message       TEXT,
    chain_pem     TEXT,               -- leaf first
    create_time   BIGINT NOT NULL,
    decide_time   BIGINT
);

-- +goose Down
DROP TABLE applications;
DROP TABLE accounts;
