-- +goose Up
-- Refunds of paid orders (RefundOrder): refund_status REQUESTED while the lifecycle service
-- cancels the bundle (an outbox message of kind lifecycle.CancelBundle), then REFUNDED (the order
-- too, with refund_time) or REFUSED (with refund_message: an instance was applied for).
ALTER TABLE orders ADD COLUMN refund_status TEXT;
ALTER TABLE orders ADD COLUMN refund_request_time BIGINT;
ALTER TABLE orders ADD COLUMN refund_time BIGINT;
ALTER TABLE orders ADD COLUMN refund_message TEXT;

-- +goose Down
ALTER TABLE orders DROP COLUMN refund_message;
ALTER TABLE orders DROP COLUMN refund_time;
ALTER TABLE orders DROP COLUMN refund_request_time;
ALTER TABLE orders DROP COLUMN refund_status;
