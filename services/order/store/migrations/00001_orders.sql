-- +goose Up
-- The product catalog. Prices are per domain per subscription year, in minor currency units.
CREATE TABLE products (
    product_id         TEXT PRIMARY KEY,
    position           INTEGER NOT NULL,
    display_name       TEXT NOT NULL,
    brand              TEXT NOT NULL,
    validation_type    TEXT NOT NULL,
    domain_type        TEXT NOT NULL,
    max_domains        INTEGER NOT NULL,
    currency_code      TEXT NOT NULL,
    yearly_price_minor BIGINT NOT NULL
);

INSERT INTO products (product_id, position, display_name, brand, validation_type, domain_type, max_domains, currency_code, yearly_price_minor) VALUES
    ('dv-single',   1, 'DV single domain',   'CertHosting DV', 'DV', 'SINGLE',   1,   'USD', 4900),
    ('dv-wildcard', 2, 'DV wildcard',        'CertHosting DV', 'DV', 'WILDCARD', 1,   'USD', 14900),
    ('dv-multi',    3, 'DV multi-domain',    'CertHosting DV', 'DV', 'MULTI',    100, 'USD', 3900),
    ('ov-single',   4, 'OV single domain',   'CertHosting OV', 'OV', 'SINGLE',   1,   'USD', 19900),
    ('ov-multi',    5, 'OV multi-domain',    'CertHosting OV', 'OV', 'MULTI',    100, 'USD', 12900),
    ('ev-single',   6, 'EV single domain',   'CertHosting EV', 'EV', 'SINGLE',   1,   'USD', 39900),
    ('ev-multi',    7, 'EV multi-domain',    'CertHosting EV', 'EV', 'MULTI',    100, 'USD', 29900);

-- Orders. request_id is the caller's idempotency key, unique per account. The product's validation
-- and domain type are copied at creation so the bundle handed to the lifecycle service does not
-- change if the catalog does. certificate_ids is a JSON array, filled in when the lifecycle service
-- acknowledges the bundle.
CREATE TABLE orders (
    order_id             TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL,
    request_id           TEXT NOT NULL,
    status               TEXT NOT NULL,
    product_id           TEXT NOT NULL REFERENCES products (product_id),
    validation_type      TEXT NOT NULL,
    domain_type          TEXT NOT NULL,
    domain_count         INTEGER NOT NULL,
    subscription_years   INTEGER NOT NULL,
    hosting              BOOLEAN NOT NULL,
    currency_code        TEXT NOT NULL,
    total_minor          BIGINT NOT NULL,
    payment_reference    TEXT,
    bundle_id            TEXT UNIQUE,
    certificate_ids      TEXT,
    create_time          BIGINT NOT NULL,
    pay_time             BIGINT,
    cancel_time          BIGINT,
    bundle_delivery_time BIGINT,
    UNIQUE (account_id, request_id)
);

CREATE INDEX orders_account ON orders (account_id, order_id);
CREATE INDEX orders_account_status ON orders (account_id, status, order_id);

-- The transactional outbox: one row per message to deliver, written in the same transaction as
-- the change that causes it (an order becoming PAID), deleted in the same transaction as the
-- record of its delivery. The relay retries a row until it is acknowledged; the receiver is
-- idempotent on message_id, so a delivery repeated after a crash has no second effect.
CREATE TABLE outbox (
    message_id        TEXT PRIMARY KEY,
    kind              TEXT NOT NULL,
    order_id          TEXT NOT NULL REFERENCES orders (order_id),
    payload           TEXT NOT NULL,
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_time BIGINT NOT NULL,
    last_error        TEXT,
    create_time       BIGINT NOT NULL
);

CREATE INDEX outbox_due ON outbox (next_attempt_time);

-- +goose Down
DROP TABLE outbox;
DROP TABLE orders;
DROP TABLE products;
