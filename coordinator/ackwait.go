package coordinator

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// consumerAckWait is the ack wait of the workers' consumer, or 0 when it
// cannot be read (there is none yet).
func consumerAckWait(ctx context.Context, js jetstream.JetStream) time.Duration {
	cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		return 0
	}
	return cons.CachedInfo().Config.AckWait
}

// ackWaitSet returns the workers' consumer's ack wait once Ensure has run
// with want, the one the node's own timers then go by. When it differs
// from before, the consumer's before Ensure (0: there was none), the change
// is logged and workers are told to read it again: one that kept its tasks
// alive at a third of a longer ack wait would see them redelivered
// meanwhile. A consumer that cannot be read just after its creation (a
// cluster electing its leader) is taken to have want.
func ackWaitSet(ctx context.Context, js jetstream.JetStream, want, before time.Duration, log *slog.Logger) time.Duration {
	now := consumerAckWait(ctx, js)
	if now == 0 {
		if want == 0 {
			want = protocol.DefaultAckWait
		}
		return want
	}
	if before > 0 && now != before {
		log.Info("coordinator: the workers' consumer has a new ack wait", "was", before, "now", now)
		if err := js.Conn().Publish(protocol.ConsumerChangedSubject, nil); err != nil {
			log.Warn("coordinator: could not tell the workers of the new ack wait; they read it again within a minute", "err", err)
		}
	}
	return now
}
