-- +goose Up
-- Hosting: applications to the CA, issued certificates, support cases, and the columns the
-- renewal ticker sweeps. Every sweep column (renew_at, expire_at, escalate_at, next_poll_at) is
-- NULL unless work is due at that time, and has a partial index on the non-NULL rows, so a sweep
-- reads only what is due: its cost grows with the number due, not the number stored.

-- bundles.t0 is the not_before of the bundle's first certificate. template_application_id is the
-- first application, whose information every automatic renewal re-submits. renewal_application_id
-- is the successor application in flight: set with a compare-and-set from NULL, it is what makes
-- "no bundle ever gets two successors" hold across crashes and concurrent ticks.
ALTER TABLE bundles ADD COLUMN t0 BIGINT;
ALTER TABLE bundles ADD COLUMN template_application_id TEXT;
ALTER TABLE bundles ADD COLUMN renewal_application_id TEXT;
ALTER TABLE bundles ADD COLUMN hosting_status TEXT NOT NULL DEFAULT '';
ALTER TABLE bundles ADD COLUMN hosting_end_time BIGINT;
ALTER TABLE bundles ADD COLUMN renew_before_seconds BIGINT;

-- renew_at: when the ticker starts the renewal of the HOSTED instance (NULL once started or when
-- none is planned). expire_at: the current certificate's not_after while the instance is HOSTED or
-- ISSUED. escalate_at: when a renewal still not complete opens an urgent support case.
ALTER TABLE certificates ADD COLUMN current_issuance_id TEXT;
ALTER TABLE certificates ADD COLUMN current_application_id TEXT;
ALTER TABLE certificates ADD COLUMN renew_at BIGINT;
ALTER TABLE certificates ADD COLUMN expire_at BIGINT;
ALTER TABLE certificates ADD COLUMN escalate_at BIGINT;

CREATE INDEX certificates_renew_at ON certificates (renew_at) WHERE renew_at IS NOT NULL;
CREATE INDEX certificates_expire_at ON certificates (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX certificates_escalate_at ON certificates (escalate_at) WHERE escalate_at IS NOT NULL;
-- At most one HOSTED instance per bundle, enforced by the database as well as by the code.
CREATE UNIQUE INDEX certificates_one_hosted ON certificates (bundle_id) WHERE state = 'HOSTED';

-- Applications. status: SUBMITTING (recorded, not yet accepted by the CA), PENDING (at the CA),
-- ISSUED, REJECTED, CANCELLED. next_poll_at is when the ticker next submits (SUBMITTING) or polls
-- (PENDING) it; NULL once decided. key_sealed is the system-generated private key, encrypted
-- (pkg/secrets); csr_pem is the customer's CSR when they brought their own key.
CREATE TABLE applications (
    application_id      TEXT PRIMARY KEY,
    certificate_id      TEXT NOT NULL REFERENCES certificates (certificate_id),
    bundle_id           TEXT NOT NULL,
    account_id          TEXT NOT NULL,
    status              TEXT NOT NULL,
    automatic           BOOLEAN NOT NULL,
    actor               TEXT NOT NULL,
    domains             TEXT NOT NULL,
    validation_method   TEXT NOT NULL,
    contact             TEXT NOT NULL,
    organization        TEXT,
    key_algorithm       TEXT NOT NULL,
    csr_pem             TEXT,
    key_sealed          TEXT,
    requested_not_after BIGINT,
    replaces_issuance_id TEXT,
    ca_name             TEXT NOT NULL,
    ca_ref              TEXT,
    instructions        TEXT NOT NULL DEFAULT '[]',
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_poll_at        BIGINT,
    last_error          TEXT,
    reject_reason       TEXT,
    reject_message      TEXT,
    create_time         BIGINT NOT NULL,
    update_time         BIGINT NOT NULL
);

CREATE INDEX applications_certificate ON applications (certificate_id, application_id);
CREATE INDEX applications_due ON applications (next_poll_at) WHERE next_poll_at IS NOT NULL;
-- At most one application in flight per instance.
CREATE UNIQUE INDEX applications_one_in_flight ON applications (certificate_id)
    WHERE status IN ('SUBMITTING', 'PENDING');

-- Issued certificates. The private key stays with its application (key_sealed); an issuance
-- points at the application it came from.
CREATE TABLE issuances (
    issuance_id    TEXT PRIMARY KEY,
    certificate_id TEXT NOT NULL REFERENCES certificates (certificate_id),
    application_id TEXT NOT NULL REFERENCES applications (application_id),
    bundle_id      TEXT NOT NULL,
    account_id     TEXT NOT NULL,
    serial         TEXT NOT NULL,
    not_before     BIGINT NOT NULL,
    not_after      BIGINT NOT NULL,
    chain_pem      TEXT NOT NULL,
    create_time    BIGINT NOT NULL
);

CREATE INDEX issuances_certificate ON issuances (certificate_id, not_before);
CREATE INDEX issuances_bundle ON issuances (bundle_id, not_before);

-- Support cases, assigned round-robin (the counters row 'support_rr') to configured engineers.
-- notes is a JSON array of {author, text, time}.
CREATE TABLE support_cases (
    case_id        TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    bundle_id      TEXT NOT NULL,
    certificate_id TEXT NOT NULL,
    application_id TEXT,
    kind           TEXT NOT NULL,
    urgent         BOOLEAN NOT NULL,
    status         TEXT NOT NULL,
    assignee       TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    summary        TEXT NOT NULL,
    notes          TEXT NOT NULL DEFAULT '[]',
    create_time    BIGINT NOT NULL,
    update_time    BIGINT NOT NULL
);

CREATE INDEX support_cases_account ON support_cases (account_id, case_id);
CREATE INDEX support_cases_status ON support_cases (status, case_id);
CREATE INDEX support_cases_certificate ON support_cases (certificate_id, status);

INSERT INTO counters (name, value) VALUES ('support_rr', 0);

ALTER TABLE events ADD COLUMN support_case_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE events DROP COLUMN support_case_id;
DELETE FROM counters WHERE name = 'support_rr';
DROP TABLE support_cases;
DROP TABLE issuances;
DROP TABLE applications;
DROP INDEX certificates_one_hosted;
DROP INDEX certificates_escalate_at;
DROP INDEX certificates_expire_at;
DROP INDEX certificates_renew_at;
ALTER TABLE certificates DROP COLUMN escalate_at;
ALTER TABLE certificates DROP COLUMN expire_at;
ALTER TABLE certificates DROP COLUMN renew_at;
ALTER TABLE certificates DROP COLUMN current_application_id;
ALTER TABLE certificates DROP COLUMN current_issuance_id;
ALTER TABLE bundles DROP COLUMN renew_before_seconds;
ALTER TABLE bundles DROP COLUMN hosting_end_time;
ALTER TABLE bundles DROP COLUMN hosting_status;
ALTER TABLE bundles DROP COLUMN renewal_application_id;
ALTER TABLE bundles DROP COLUMN template_application_id;
ALTER TABLE bundles DROP COLUMN t0;
