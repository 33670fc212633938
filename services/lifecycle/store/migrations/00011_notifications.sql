-- +goose Up
-- Webhook endpoints of an account (WebhookService). The signing secret is sealed with the
-- service's key box (like private keys); after a rotation the previous secret keeps signing until
-- previous_secret_expire.
CREATE TABLE webhook_endpoints (
    endpoint_id            TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL,
    url                    TEXT NOT NULL,
    kinds                  TEXT NOT NULL, -- space-separated kind names; empty: every kind
    description            TEXT NOT NULL,
    disabled               BOOLEAN NOT NULL,
    secret_sealed          TEXT NOT NULL,
    previous_secret_sealed TEXT NOT NULL,
    previous_secret_expire BIGINT,
    create_time            BIGINT NOT NULL,
    update_time            BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, endpoint_id);

-- The durable notification queue: one row per (event, webhook endpoint) and per (event, e-mail
-- recipient). Rows are written by the fan-out, which follows the events table from the cursor in
-- counters ('notify_cursor') and advances it in the same transaction as the rows it inserts: a
-- crash either keeps both or neither. lane is what a delivery worker serves one at a time (the
-- endpoint id, or 'smtp'), so a slow endpoint holds up only its own lane.
CREATE TABLE notifications (
    notification_id   TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL,
    event_id          BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    channel           TEXT NOT NULL, -- 'webhook' or 'email'
    lane              TEXT NOT NULL,
    endpoint_id       TEXT NOT NULL, -- webhook only
    recipient         TEXT NOT NULL, -- e-mail only
    message_id        TEXT NOT NULL, -- webhook-id: the same for every delivery of one event
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL, -- 'pending', 'succeeded', 'failed'
    attempts          BIGINT NOT NULL,
    last_status_code  BIGINT NOT NULL,
    last_error        TEXT NOT NULL,
    create_time       BIGINT NOT NULL,
    give_up_time      BIGINT NOT NULL,
    last_attempt_time BIGINT,
    next_attempt_time BIGINT,
    claim_until       BIGINT
);

CREATE INDEX notifications_due ON notifications (status, lane, next_attempt_time);
CREATE INDEX notifications_account ON notifications (account_id, notification_id);

-- History written before this migration is not notified: the cursor starts at the last event.
INSERT INTO counters (name, value) SELECT 'notify_cursor', value FROM counters WHERE name = 'events';

-- +goose Down
DELETE FROM counters WHERE name = 'notify_cursor';
DROP TABLE notifications;
DROP TABLE webhook_endpoints;
