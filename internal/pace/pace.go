// Package pace spaces out polls, retries and repeated warnings: Wait lets a
// loop that asks a server again, or tries a lost connection again, wait its
// turn without outliving the context it runs under, and Due tells a loop
// whether something it does now and then (a warning) is due again. Neither
// is the way to wait for another party to do something; that is an event
// to watch for.
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

// Due reports whether something last done at *last (never, if zero) is due
// again at now, every apart, and if so records now as its last time.
func Due(last *time.Time, now time.Time, every time.Duration) bool {
	if !last.IsZero() && now.Sub(*last) < every {
		return false
	}
	*last = now
	return true
}
