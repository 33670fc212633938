-- +goose Up
-- Deployments (RecordDeployment): every report a deploy agent makes of a certificate installed on
-- a target, kept as history. The latest report of each bundle and target is the row with the
-- greatest deployment_id (ids grow with time), which GetBundle shows.
CREATE TABLE deployments (
    deployment_id    TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    bundle_id        TEXT NOT NULL,
    certificate_id   TEXT NOT NULL,
    issuance_id      TEXT NOT NULL,
    serial           TEXT NOT NULL,
    target           TEXT NOT NULL,
    host             TEXT NOT NULL,
    certificate_path TEXT NOT NULL,
    private_key_path TEXT NOT NULL,
    deploy_time      BIGINT NOT NULL,
    success          BOOLEAN NOT NULL,
    error            TEXT NOT NULL,
    record_time      BIGINT NOT NULL
);
CREATE INDEX deployments_bundle_target ON deployments (bundle_id, target, deployment_id);
CREATE INDEX deployments_issuance ON deployments (issuance_id, target) WHERE success;

-- The targets each certificate of a bundle is expected to reach (UpdateBundle), one row each;
-- set_time: when UpdateBundle named them (the deadline runs from it for a certificate issued before).
CREATE TABLE deployment_targets (
    bundle_id TEXT NOT NULL,
    target    TEXT NOT NULL,
    set_time  BIGINT NOT NULL,
    PRIMARY KEY (bundle_id, target)
);

-- The deploy-deadline check of an issuance, once made: 'DEPLOYED' when every expected target had
-- it in time, 'OVERDUE' when the ticker reported it (one event, one case per issuance). An
-- issuance without a row here is still to be checked.
CREATE TABLE deployment_checks (
    bundle_id   TEXT NOT NULL,
    issuance_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    check_time  BIGINT NOT NULL,
    PRIMARY KEY (bundle_id, issuance_id)
);

-- +goose Down
DROP TABLE deployment_checks;
DROP TABLE deployment_targets;
DROP INDEX deployments_issuance;
DROP INDEX deployments_bundle_target;
DROP TABLE deployments;
