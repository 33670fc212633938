-- +goose Up
-- The DNS verdict clock of each application (pkg/ca/dnscheck.Clock): how long the resolver has
-- answered that its records are absent, the last answered poll of the current stretch (NULL after
-- a poll whose lookups failed: an outage never counts towards a verdict), and how many polls in a
-- row failed (their backoff). Applications pending at the upgrade start counting afresh.
ALTER TABLE applications ADD COLUMN absent_micros BIGINT NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN absent_since BIGINT;
ALTER TABLE applications ADD COLUMN lookup_failures INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE applications DROP COLUMN lookup_failures;
ALTER TABLE applications DROP COLUMN absent_since;
ALTER TABLE applications DROP COLUMN absent_micros;
