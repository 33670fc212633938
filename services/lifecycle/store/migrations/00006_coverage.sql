-- +goose Up
-- Every paid day covered (docs/lifecycle.md, "State and renewal status").

-- An instance whose certificate is valid keeps its state while the renewal replacing it is
-- rejected: the rejection is its renewal status, beside the state. Instances moved to
-- VALIDATION_FAILED by a rejected re-issue before this migration (they hold a certificate) go
-- back to HOSTED, or EXPIRED once that certificate has ended (expire_at is cleared then).
UPDATE certificates SET state = 'HOSTED'
WHERE state = 'VALIDATION_FAILED' AND current_issuance_id IS NOT NULL AND expire_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM certificates o WHERE o.bundle_id = certificates.bundle_id AND o.state = 'HOSTED');
UPDATE certificates SET state = 'EXPIRED'
WHERE state = 'VALIDATION_FAILED' AND current_issuance_id IS NOT NULL;

-- The bundle's current certificate: the instance and issuance to serve now (the newest valid
-- certificate), kept by every write that issues, imports, expires or revokes one; current_not_after
-- is that certificate's end, for ListBundles' expire_before.
ALTER TABLE bundles ADD COLUMN current_certificate_id TEXT;
ALTER TABLE bundles ADD COLUMN current_issuance_id TEXT;
ALTER TABLE bundles ADD COLUMN current_not_after BIGINT;
UPDATE bundles SET current_issuance_id = (
    SELECT i.issuance_id FROM issuances i JOIN certificates c ON c.current_issuance_id = i.issuance_id
    WHERE c.bundle_id = bundles.bundle_id AND c.state IN ('HOSTED', 'ISSUED')
    ORDER BY i.not_before DESC, i.issuance_id DESC LIMIT 1);
UPDATE bundles SET current_certificate_id = (SELECT certificate_id FROM issuances WHERE issuance_id = bundles.current_issuance_id),
    current_not_after = (SELECT not_after FROM issuances WHERE issuance_id = bundles.current_issuance_id)
WHERE current_issuance_id IS NOT NULL;
CREATE INDEX bundles_account_expiry ON bundles (account_id, current_not_after) WHERE current_not_after IS NOT NULL;

-- An imported certificate's application: no CA was asked, the certificate and key came from the
-- customer (ImportCertificate). It is the template of a hosted bundle's renewals like any first
-- application.
ALTER TABLE applications ADD COLUMN imported BOOLEAN NOT NULL DEFAULT FALSE;
-- The renewal of a certificate (a successor's application) is found by the certificate it
-- replaces: an instance's renewal status.
CREATE INDEX applications_replaces ON applications (replaces_issuance_id) WHERE replaces_issuance_id IS NOT NULL;

-- The names of each instance's latest application, for the domain filters of ListBundles and
-- ListCertificates. reversed is the name with its labels in reverse order and a trailing dot
-- ("com.example.shop."), so "every name under example.com" is the prefix "com.example.".
CREATE TABLE certificate_domains (
    account_id     TEXT NOT NULL,
    certificate_id TEXT NOT NULL REFERENCES certificates (certificate_id),
    bundle_id      TEXT NOT NULL,
    domain         TEXT NOT NULL,
    reversed       TEXT NOT NULL,
    PRIMARY KEY (certificate_id, domain)
);
CREATE INDEX certificate_domains_account ON certificate_domains (account_id, reversed);


-- A revoked certificate (RevokeCertificate): when, and the RFC 5280 reason code.
ALTER TABLE issuances ADD COLUMN revoke_time BIGINT;
ALTER TABLE issuances ADD COLUMN revoke_reason INTEGER;

-- +goose Down
ALTER TABLE issuances DROP COLUMN revoke_reason;
ALTER TABLE issuances DROP COLUMN revoke_time;
UPDATE certificates SET state = 'VALIDATION_FAILED'
WHERE state IN ('HOSTED', 'EXPIRED') AND current_application_id IN (SELECT application_id FROM applications WHERE status = 'REJECTED');
DROP TABLE certificate_domains;
DROP INDEX applications_replaces;
ALTER TABLE applications DROP COLUMN imported;
DROP INDEX bundles_account_expiry;
ALTER TABLE bundles DROP COLUMN current_not_after;
ALTER TABLE bundles DROP COLUMN current_issuance_id;
ALTER TABLE bundles DROP COLUMN current_certificate_id;
