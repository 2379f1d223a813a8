package coordinator

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// consumerAckWait is the ack wait of the workers' consumer, or 0 when it
// cannot be read within ackWaitLookup (there is none yet, or a cluster is
// electing its leader).
func consumerAckWait(ctx context.Context, js jetstream.JetStream) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, ackWaitLookup)
	defer cancel()
	cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		return 0
	}
	return cons.CachedInfo().Config.AckWait
}

// ackWaitLookup bounds a look at the workers' consumer's ack wait.
const ackWaitLookup = 2 * time.Second

// ackWaitSet returns the workers' consumer's ack wait once Ensure has run
// with want, the one the node's own timers go by (the loop reads it again
// at each of their ticks). A coordinator that set an ack wait other than
// before, the consumer's before Ensure (0: none, or not known), tells the
// workers to read it again, and logs a change it knows of: a worker that
// kept its tasks alive at a third of a longer ack wait would see them
// redelivered meanwhile (a notice too many costs them a lookup). A consumer
// that cannot be read is taken to have want, or before, or the default.
func ackWaitSet(ctx context.Context, js jetstream.JetStream, want, before time.Duration, log *slog.Logger) time.Duration {
	if want > 0 && want != before {
		if before > 0 {
			log.Info("coordinator: the workers' consumer has a new ack wait", "was", before, "now", want)
		}
		if err := js.Conn().Publish(protocol.ConsumerChangedSubject, nil); err != nil {
			log.Warn("coordinator: could not tell the workers of the new ack wait; they read it again within a minute", "err", err)
		}
	}
	if now := consumerAckWait(ctx, js); now > 0 {
		return now
	}
	for _, d := range []time.Duration{want, before} {
		if d > 0 {
			return d
		}
	}
	return protocol.DefaultAckWait
}

// followAckWait reads the workers' consumer's ack wait again whenever a
// coordinator says it changed it, and every ackWaitFollow, until ctx ends,
// off the node's loop (a lookup may wait for an absent broker), and sends
// the loop every value that differs from the one before. done is closed
// once it has stopped.
func (n *node) followAckWait(ctx context.Context) (_ <-chan time.Duration, done <-chan struct{}) {
	out := make(chan time.Duration)
	changed := make(chan *nats.Msg, 1)
	sub, err := n.js.Conn().ChanSubscribe(protocol.ConsumerChangedSubject, changed)
	ended := make(chan struct{})
	last := n.ackWait
	go func() {
		defer close(ended)
		if err == nil {
			defer sub.Unsubscribe()
		}
		t := time.NewTicker(ackWaitFollow)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
			d := consumerAckWait(ctx, n.js)
			if d <= 0 || d == last {
				continue
			}
			select {
			case out <- d:
				last = d
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, ended
}

// ackWaitFollow is how often a coordinator reads the consumer's ack wait
// again without being told it changed.
const ackWaitFollow = time.Minute
