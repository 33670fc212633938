-- +goose Up
-- How many times an application's order was replaced because the CA no longer had it (a 404 when
-- polling it): bounded, so a proxy that answers 404 to every poll cannot make the client order
-- again and again into the CA's new-order rate limit.
ALTER TABLE applications ADD COLUMN reorders INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE applications DROP COLUMN reorders;
