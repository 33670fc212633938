-- +goose Up
-- One incident, one case: support_cases.incident names what went wrong (for a hosted bundle the
-- bundle, whose renewal is one incident whatever instance it touches; otherwise the instance), and
-- at most one case per incident is unresolved, enforced here as well as by the code. Cases opened
-- before this migration are each their own incident.
ALTER TABLE support_cases ADD COLUMN incident TEXT NOT NULL DEFAULT '';
UPDATE support_cases SET incident = case_id;
-- ...except the oldest unresolved case of each incident, which carries on as its case: an
-- escalation or a rejection after the upgrade adds to it instead of opening a second one.
UPDATE support_cases SET incident = bundle_id
WHERE status <> 'RESOLVED'
  AND bundle_id IN (SELECT bundle_id FROM bundles WHERE hosting)
  AND case_id = (SELECT MIN(o.case_id) FROM support_cases o
                 WHERE o.bundle_id = support_cases.bundle_id AND o.status <> 'RESOLVED');
UPDATE support_cases SET incident = certificate_id
WHERE status <> 'RESOLVED'
  AND bundle_id IN (SELECT bundle_id FROM bundles WHERE NOT hosting)
  AND case_id = (SELECT MIN(o.case_id) FROM support_cases o
                 WHERE o.certificate_id = support_cases.certificate_id AND o.status <> 'RESOLVED');
CREATE UNIQUE INDEX support_cases_one_open ON support_cases (incident) WHERE status <> 'RESOLVED';

-- Automatic retries of a rejected hosted renewal. retry_at: when the ticker submits the next
-- attempt for the VALIDATION_FAILED instance (NULL when none is planned; a sweep column like
-- renew_at, with a partial index). retries: how many automatic retries the current renewal has had.
ALTER TABLE certificates ADD COLUMN retry_at BIGINT;
ALTER TABLE certificates ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX certificates_retry_at ON certificates (retry_at) WHERE retry_at IS NOT NULL;
-- Renewals rejected before the upgrade (for a reason time can cure: DNS, CAA) are due for their
-- first automatic retry at once; the ticker skips those whose certificate in use has expired.
UPDATE certificates SET retry_at = 0
WHERE state = 'VALIDATION_FAILED' AND current_application_id IN (
    SELECT a.application_id FROM applications a JOIN bundles b ON b.bundle_id = a.bundle_id
    WHERE b.hosting AND a.status = 'REJECTED' AND a.replaces_issuance_id IS NOT NULL AND a.reject_reason IN ('DNS', 'CAA'));

-- +goose Down
DROP INDEX certificates_retry_at;
ALTER TABLE certificates DROP COLUMN retries;
ALTER TABLE certificates DROP COLUMN retry_at;
DROP INDEX support_cases_one_open;
ALTER TABLE support_cases DROP COLUMN incident;
