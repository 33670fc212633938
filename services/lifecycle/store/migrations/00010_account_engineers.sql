-- +goose Up
-- Each account's dedicated support engineer (docs/lifecycle.md, "Support"): one of the configured
-- engineers, chosen least-loaded when the account first needs one and kept until support
-- reassigns it (SetAccountEngineer). Every case of the account is assigned to it.
CREATE TABLE account_engineers (
    account_id  TEXT PRIMARY KEY,
    engineer    TEXT NOT NULL,
    assign_time BIGINT NOT NULL
);
CREATE INDEX account_engineers_engineer ON account_engineers (engineer);
-- Accounts with cases keep the engineer of their newest case. The configured engineers are not
-- known here: one no longer configured is replaced, least-loaded, when the account next needs its
-- engineer (Tx.EngineerFor).
INSERT INTO account_engineers (account_id, engineer, assign_time)
SELECT c.account_id, c.assignee, c.create_time FROM support_cases c
WHERE c.case_id = (SELECT MAX(o.case_id) FROM support_cases o WHERE o.account_id = c.account_id);

-- Cases the customer opened (CreateSupportCase) carry the customer's request_id: one case per
-- account and request_id.
ALTER TABLE support_cases ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX support_cases_request ON support_cases (account_id, request_id) WHERE request_id IS NOT NULL;

-- +goose Down
DROP INDEX support_cases_request;
ALTER TABLE support_cases DROP COLUMN request_id;
DROP INDEX account_engineers_engineer;
DROP TABLE account_engineers;
