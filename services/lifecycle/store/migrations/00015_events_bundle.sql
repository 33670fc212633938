-- +goose Up
-- The notification fan-out asks, for every issued event, whether the bundle had a certificate
-- before (a renewal, not a first issuance): events by bundle, in order. Without this index the
-- question read the account's every event, so a mass re-issue of one account's 100,000
-- certificates spent nearly all of the lifecycle service's CPU on it (docs/performance.md).
CREATE INDEX events_bundle ON events (bundle_id, event_id);

-- +goose Down
DROP INDEX events_bundle;
