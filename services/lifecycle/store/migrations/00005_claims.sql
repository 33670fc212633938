-- +goose Up
-- Replicas of the lifecycle service share the ticker's work: a sweep claims the certificates it
-- works on until claim_until (now + the lease), so another replica's sweep passes them by; the
-- work's own write (SaveSchedule) gives the claim back, and a replica that dies holding claims
-- leaves them to the others when the lease ends. Applications need no column: a claim pushes
-- their next_poll_at, which the work's outcome sets again.
ALTER TABLE certificates ADD COLUMN claim_until BIGINT;

-- +goose Down
ALTER TABLE certificates DROP COLUMN claim_until;
