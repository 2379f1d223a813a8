package protocol

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConsumerAckWait is the ack wait of the workers' consumer, or 0 when it
// cannot be read within ackWaitLookup (there is none yet, or a cluster is
// electing its leader).
func ConsumerAckWait(ctx context.Context, js jetstream.JetStream) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, ackWaitLookup)
	defer cancel()
	cons, err := js.Consumer(ctx, TasksStream, WorkersConsumer)
	if err != nil {
		return 0
	}
	return cons.CachedInfo().Config.AckWait
}

// FollowAckWait reads the workers' consumer's ack wait again whenever a
// coordinator says it changed it (ConsumerChangedSubject), and every
// AckWaitFollow in case the notice was missed, until ctx ends. It sends
// every value that differs from the one before (last, at first), and
// closes the channel once it has stopped. Workers keep their tasks alive
// by it, coordinators time their stall check by it; a lookup may wait for
// an absent broker, so it runs on a goroutine of its own.
func FollowAckWait(ctx context.Context, js jetstream.JetStream, last time.Duration) <-chan time.Duration {
	out := make(chan time.Duration)
	changed := make(chan *nats.Msg, 1)
	sub, err := js.Conn().ChanSubscribe(ConsumerChangedSubject, changed)
	go func() {
		defer close(out)
		if err == nil { // else the periodic look alone
			defer sub.Unsubscribe()
		}
		t := time.NewTicker(AckWaitFollow)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-t.C:
			}
			d := ConsumerAckWait(ctx, js)
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
	return out
}

// AckWaitFollow is how often FollowAckWait reads the consumer's ack wait
// again without being told it changed.
const AckWaitFollow = time.Minute

// ackWaitLookup bounds a look at the workers' consumer's ack wait.
const ackWaitLookup = 2 * time.Second
