-- +goose Up
-- One incident, one case: support_cases.incident names what went wrong (for a hosted bundle the
-- bundle, whose renewal is one incident whatever instance it touches; otherwise the instance), and
-- at most one case per incident is unresolved, enforced here as well as by the code. Cases opened
-- before this migration are each their own incident.
ALTER TABLE support_cases ADD COLUMN incident TEXT NOT NULL DEFAULT '';
UPDATE support_cases SET incident = case_id;
CREATE UNIQUE INDEX support_cases_one_open ON support_cases (incident) WHERE status <> 'RESOLVED';

-- Automatic retries of a rejected hosted renewal. retry_at: when the ticker submits the next
-- attempt for the VALIDATION_FAILED instance (NULL when none is planned; a sweep column like
-- renew_at, with a partial index). retries: how many automatic retries the current renewal has had.
ALTER TABLE certificates ADD COLUMN retry_at BIGINT;
ALTER TABLE certificates ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX certificates_retry_at ON certificates (retry_at) WHERE retry_at IS NOT NULL;

-- +goose Down
DROP INDEX certificates_retry_at;
ALTER TABLE certificates DROP COLUMN retries;
ALTER TABLE certificates DROP COLUMN retry_at;
DROP INDEX support_cases_one_open;
ALTER TABLE support_cases DROP COLUMN incident;
