package db

import "context"

// Enqueue queues a write exactly as Write does but returns at once with the channel its result
// will arrive on, so a test outside the package knows the write is queued before it moves on.
func Enqueue(ctx context.Context, d *DB, fn func(*Tx) error) <-chan error { return enqueue(ctx, d, fn) }
