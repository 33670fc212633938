-- +goose Up
-- Expiry reminders (docs/lifecycle.md, "Expiry reminders"). remind_at is when the ticker next looks
-- at an instance's certificate to send an expiry_reminder event: the next threshold before its
-- not_after, or the time of its issuance (the sweep then works out the first threshold). It is
-- NULL when there is nothing to remind of (no valid certificate, or one with a successor). The
-- partial index keeps the sweep's cost to the reminders due, as for renew_at and expire_at.
ALTER TABLE certificates ADD COLUMN remind_at BIGINT;
-- Certificates valid before this migration are looked at by the first sweep: each gets at most one
-- reminder then (the latest threshold already passed, if any), and its next threshold after it.
UPDATE certificates SET remind_at = 0 WHERE expire_at IS NOT NULL AND state IN ('HOSTED', 'ISSUED');
CREATE INDEX certificates_remind_at ON certificates (remind_at) WHERE remind_at IS NOT NULL;

-- An account's settings (AccountService.UpdateAccountSettings); an account without a row has the
-- defaults. expiry_reminder_days is a comma-separated list of whole days, descending ("30,14,7,3,1").
CREATE TABLE account_settings (
    account_id           TEXT PRIMARY KEY,
    expiry_reminder_days TEXT NOT NULL,
    update_time          BIGINT NOT NULL
);

-- +goose Down
DROP TABLE account_settings;
DROP INDEX certificates_remind_at;
ALTER TABLE certificates DROP COLUMN remind_at;
