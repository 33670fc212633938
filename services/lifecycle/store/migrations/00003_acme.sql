-- +goose Up
-- ACME: renewal information (RFC 9773) and the delegated DNS zone.

-- ari_check_at: when the ticker next asks the issuing CA for this hosted certificate's renewal
-- window; NULL when the CA offers none, or once too little of the lifetime is left to trust one.
ALTER TABLE certificates ADD COLUMN ari_check_at BIGINT;
CREATE INDEX certificates_ari_check_at ON certificates (ari_check_at) WHERE ari_check_at IS NOT NULL;

-- The TXT records of the delegated zone: customers point _acme-challenge.<domain> at a name in
-- this zone once (a CNAME), and the service's own authoritative DNS server answers each DNS-01
-- challenge from this table, so every renewal verifies without the customer. Kept in the
-- database, not in memory, so any replica (and a restarted process) answers the same.
CREATE TABLE dns_records (
    fqdn        TEXT NOT NULL,
    value       TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (fqdn, value)
);

-- +goose Down
DROP TABLE dns_records;
DROP INDEX certificates_ari_check_at;
ALTER TABLE certificates DROP COLUMN ari_check_at;
