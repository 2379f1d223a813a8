// Package pace spaces out polls and retries: Wait lets a loop that asks a
// server again, or tries a lost connection again, wait its turn without
// outliving the context it runs under. It is never the way to wait for
// another party to do something; that is an event to watch for.
package pace

import (
	"context"
	"time"
)

// Wait waits d or until ctx ends, whichever is first, and reports whether
// ctx is still live.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
