package auth

import "context"

// RecheckStreams runs one pass of the open-stream re-verification now, as the loop does every
// TTL, so a test decides when it happens.
func (i *Interceptor) RecheckStreams(ctx context.Context) { i.streams.recheck(ctx) }
