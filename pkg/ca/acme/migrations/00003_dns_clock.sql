-- +goose Up
-- The CNAME pre-check's verdict clock (pkg/ca/dnscheck.Clock): how long the resolver has answered
-- that the customer's delegation CNAME is absent or points elsewhere, the last answered poll of
-- the current stretch (NULL after a failed lookup: an outage never counts towards a verdict), and
-- how many polls in a row had a failed lookup.
ALTER TABLE applications ADD COLUMN absent_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN absent_since BIGINT;
ALTER TABLE applications ADD COLUMN lookup_failures INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE applications DROP COLUMN lookup_failures;
ALTER TABLE applications DROP COLUMN absent_since;
ALTER TABLE applications DROP COLUMN absent_micros;
