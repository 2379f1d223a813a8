package coordinator

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

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
	if now := protocol.ConsumerAckWait(ctx, js); now > 0 {
		return now
	}
	for _, d := range []time.Duration{want, before} {
		if d > 0 {
			return d
		}
	}
	return protocol.DefaultAckWait
}
