-- +goose Up
-- A bundle's maintenance window (UpdateBundle): the weekly windows its automatic renewals wait
-- for, as JSON text ({"days":["Sunday"],"start_hour":2,"duration_hours":2,"time_zone":"Europe/Berlin"});
-- NULL when renewals start at their renewal time. Only the lifecycle service reads it.
ALTER TABLE bundles ADD COLUMN maintenance_window TEXT;

-- +goose Down
ALTER TABLE bundles DROP COLUMN maintenance_window;
