-- +goose Up
-- Accounts (tenants) and their API keys. Keys are stored as SHA-256 digests of the secret:
-- the secrets are 256-bit random strings, so a fast hash is enough (no dictionary to guess from),
-- and lookups stay a single indexed read.
CREATE TABLE accounts (
    account_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    create_time BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (account_id),
    role        TEXT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    create_time BIGINT NOT NULL,
    revoke_time BIGINT
);

CREATE INDEX api_keys_account ON api_keys (account_id);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE accounts;
