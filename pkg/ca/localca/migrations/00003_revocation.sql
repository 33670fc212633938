-- +goose Up
-- Revocation: a revoked certificate keeps its row with the time and the RFC 5280 reason code; the
-- CRL lists the revoked certificates that have not expired.
ALTER TABLE certificates ADD COLUMN revoke_time BIGINT;
ALTER TABLE certificates ADD COLUMN revoke_reason INTEGER;
CREATE INDEX certificates_revoked ON certificates (revoke_time) WHERE revoke_time IS NOT NULL;

-- +goose Down
DROP INDEX certificates_revoked;
ALTER TABLE certificates DROP COLUMN revoke_reason;
ALTER TABLE certificates DROP COLUMN revoke_time;
