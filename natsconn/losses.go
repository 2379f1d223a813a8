package natsconn

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Losses tells requests that the connection they went out on was lost. A
// request the server read and did not answer before it went down (or
// before the client lost it) is never answered: the client sends nothing
// again after it reconnects, and whoever asked waits out the request's
// timeout. A request bounded by [Losses.Bound] ends at the connection's
// next loss instead, so it can be asked again as soon as the client is
// back; one asked while the client reconnects waits in the client's
// buffer and goes out on the new connection, as any other.
//
// A nil *Losses bounds requests by their timeout alone.
//
// The context of a request ended by a loss has the cause [ErrLost]
// (context.Cause).
type Losses struct {
	nc     *nats.Conn
	events chan nats.Status
	done   chan struct{} // closed once the watch ends (Close)

	mu   sync.Mutex
	now  context.Context // ends, with the cause ErrLost, at the next loss
	lose context.CancelCauseFunc
}

// WatchLosses watches nc until Close.
func WatchLosses(nc *nats.Conn) *Losses {
	l := &Losses{nc: nc, events: nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED), done: make(chan struct{})}
	l.now, l.lose = context.WithCancelCause(context.Background())
	go l.watch()
	return l
}

func (l *Losses) watch() {
	for range l.events { // closed by Close
		l.mu.Lock()
		l.lose(ErrLost)
		l.now, l.lose = context.WithCancelCause(context.Background())
		l.mu.Unlock()
	}
	close(l.done)
}

// ErrLost is the cause of a request's context that [Losses.Bound] ended
// because the connection was lost.
var ErrLost = errors.New("natsconn: the connection was lost while the request was out")

// Lost reports whether ctx, from [Losses.Bound], ended because the
// connection was lost.
func Lost(ctx context.Context) bool { return errors.Is(context.Cause(ctx), ErrLost) }

// Bound returns a context for one request: it ends after d, when ctx ends,
// or when the connection is next lost, whichever comes first. Nothing runs
// for it until the loss, if one comes.
func (l *Losses) Bound(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if l == nil {
		return context.WithTimeout(ctx, d)
	}
	l.mu.Lock()
	now := l.now
	l.mu.Unlock()
	lctx, lose := context.WithCancelCause(ctx)
	stop := context.AfterFunc(now, func() { lose(ErrLost) })
	rctx, cancel := context.WithTimeout(lctx, d)
	return rctx, func() { stop(); cancel(); lose(context.Canceled) }
}

// Close stops watching; requests bound later end by their timeout alone.
func (l *Losses) Close() {
	if l == nil {
		return
	}
	l.nc.RemoveStatusListener(l.events)
	<-l.done
}
