-- +goose Up
-- A bundle is the subscription bought with one order; the order service chooses its id, which
-- makes CreateBundle idempotent. The product's validation and domain type are a snapshot taken
-- at payment.
CREATE TABLE bundles (
    bundle_id          TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    order_id           TEXT NOT NULL UNIQUE,
    product_id         TEXT NOT NULL,
    validation_type    TEXT NOT NULL,
    domain_type        TEXT NOT NULL,
    domain_count       INTEGER NOT NULL,
    hosting            BOOLEAN NOT NULL,
    subscription_years INTEGER NOT NULL,
    create_time        BIGINT NOT NULL
);

CREATE INDEX bundles_account ON bundles (account_id, bundle_id);

-- One certificate instance per subscription year. coverage_* stay NULL until the bundle's first
-- certificate is issued (T0).
CREATE TABLE certificates (
    certificate_id TEXT PRIMARY KEY,
    bundle_id      TEXT NOT NULL REFERENCES bundles (bundle_id),
    account_id     TEXT NOT NULL,
    sequence       INTEGER NOT NULL,
    state          TEXT NOT NULL,
    coverage_start BIGINT,
    coverage_end   BIGINT,
    create_time    BIGINT NOT NULL,
    update_time    BIGINT NOT NULL,
    UNIQUE (bundle_id, sequence)
);

CREATE INDEX certificates_account ON certificates (account_id, bundle_id, sequence);
CREATE INDEX certificates_account_state ON certificates (account_id, state, bundle_id, sequence);

-- The lifecycle history, and the feed of the account's events. event_id comes from the counters
-- table inside the writing transaction, so ids increase in commit order on every backend and a
-- reader resuming "after event N" misses nothing.
CREATE TABLE events (
    event_id       BIGINT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    bundle_id      TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    type           TEXT NOT NULL,
    from_state     TEXT NOT NULL,
    to_state       TEXT NOT NULL,
    actor          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    time           BIGINT NOT NULL
);

CREATE INDEX events_certificate ON events (certificate_id, event_id);
CREATE INDEX events_account ON events (account_id, event_id);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

INSERT INTO counters (name, value) VALUES ('events', 0);

-- +goose Down
DROP TABLE counters;
DROP TABLE events;
DROP TABLE certificates;
DROP TABLE bundles;
