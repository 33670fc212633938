-- +goose Up
-- PostgreSQL's version of ../00001_localca.sql: the same schema, with BYTEA where SQLite says BLOB.
-- The CA's own keys: its root and intermediate certificates with their private keys, and the
-- secret its validation records are derived from. Every secret is sealed with the master key
-- (pkg/secrets, AES-256-GCM, bound to the row by name), so this file alone reveals none of them.
-- Rows are written once, at the first start, and never changed.
CREATE TABLE issuers (
    name            TEXT PRIMARY KEY, -- 'root' or 'intermediate'
    certificate_pem TEXT NOT NULL,
    sealed_key      TEXT NOT NULL,    -- PKCS #8 private key, sealed
    create_time     BIGINT NOT NULL
);

CREATE TABLE sealed_secrets (
    name         TEXT PRIMARY KEY,    -- 'validation-hmac'
    sealed_value TEXT NOT NULL,
    create_time  BIGINT NOT NULL
);

-- One row per application. request_id is the caller's idempotency key. The request is kept as it
-- came (domains, CSR, organization) because issuance happens later, when a poll finds the DNS
-- records. state is PENDING until decided: ISSUED, REJECTED (with reason and message) or
-- CANCELLED; a decided row never changes again.
CREATE TABLE applications (
    ref                 TEXT PRIMARY KEY,
    request_id          TEXT NOT NULL UNIQUE,
    domains             TEXT NOT NULL,    -- JSON array, normalized (lower case)
    csr                 BYTEA NOT NULL,   -- DER
    validation          TEXT NOT NULL,    -- DV, OV or EV
    organization        TEXT,             -- JSON, OV and EV
    contact             TEXT NOT NULL,    -- JSON
    requested_not_after BIGINT,
    requested_lifetime  BIGINT,           -- seconds; when requested_not_after is NULL
    instructions        TEXT NOT NULL,    -- JSON array of the DNS records to publish
    state               TEXT NOT NULL,
    reason              TEXT,
    message             TEXT,
    serial              TEXT,             -- of the issued certificate
    chain_pem           TEXT,             -- leaf then intermediate
    create_time         BIGINT NOT NULL,
    decide_time         BIGINT
);

-- A validation record seen with its expected value, for an application. Once seen it stays seen
-- for that application (an ACME authorization does the same), so a multi-domain application
-- whose records show up at different moments still completes.
CREATE TABLE validations (
    ref           TEXT NOT NULL REFERENCES applications (ref),
    record_name   TEXT NOT NULL,
    validate_time BIGINT NOT NULL,
    PRIMARY KEY (ref, record_name)
);

-- Every certificate issued, by serial (hex): the serial's uniqueness is enforced here.
CREATE TABLE certificates (
    serial          TEXT PRIMARY KEY,
    ref             TEXT NOT NULL REFERENCES applications (ref),
    certificate_pem TEXT NOT NULL,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    create_time     BIGINT NOT NULL
);

-- +goose Down
DROP TABLE certificates;
DROP TABLE validations;
DROP TABLE applications;
DROP TABLE sealed_secrets;
DROP TABLE issuers;
