package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// AckWait is the task consumer's ack wait as the worker last read it (a
// guess of 3 s until it has found the consumer). Its keeper tells the
// broker that every task it holds is in progress every third of it.
func (w *Worker) AckWait() time.Duration { return time.Duration(w.ackWait.Load()) }

// setAckWait records the consumer's ack wait d (ignored unless positive).
// A shorter one has the keeper go through the tasks held at once: they
// were last kept alive at a third of the longer one.
func (w *Worker) setAckWait(d time.Duration) {
	if d <= 0 {
		return
	}
	was := time.Duration(w.ackWait.Swap(int64(d)))
	if d < was {
		w.held.keepNow()
	}
}

// followAckWait reads the consumer's ack wait again whenever a
// coordinator says it changed it, and every ackWaitLook in case the
// notice was missed, until ctx ends. A coordinator started with another
// ack wait changes it for every worker of every run.
func (w *Worker) followAckWait(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(ackWaitLook)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.consumerChanged:
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, ackWaitLook/2)
		info, err := cons.Info(lctx)
		cancel()
		if err != nil {
			continue // the broker is away, or the consumer: the task loop notices
		}
		was := w.AckWait()
		if now := info.Config.AckWait; now != was && now > 0 {
			w.setAckWait(now)
			w.opts.Log.Info("worker: the task consumer's ack wait changed", "worker", w.opts.ID, "was", was, "now", now)
		}
	}
}

// ackWaitLook is how often a worker reads the consumer's ack wait again
// without being told it changed.
const ackWaitLook = time.Minute
