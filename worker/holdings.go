package worker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holdings are the tasks a worker has taken from its feed and not settled
// yet (acknowledged, handed back or dropped): the one it computes, those
// waiting in its stash or its feed's queue, shards computed and waiting for
// the rest of their step, and gradients waiting to be stored. Its keeper
// tells the broker that every one of them is in progress once every
// interval, so that none is redelivered while the worker still has it,
// however long each stays: a shard of a large model can take seconds, and
// a task taken early waits for every one before it.
//
// Which order the keeper goes through them in reaches nothing but the
// order of its InProgress messages.
type holdings struct {
	mu    sync.Mutex
	msgs  map[jetstream.Msg]struct{}
	nudge chan struct{} // a round now, not at the end of the period
}

func newHoldings() *holdings {
	return &holdings{msgs: make(map[jetstream.Msg]struct{}), nudge: make(chan struct{}, 1)}
}

// keepNow has the keeper go through the tasks held now: tasks just taken
// that waited in the client a long time.
func (h *holdings) keepNow() {
	select {
	case h.nudge <- struct{}{}:
	default:
	}
}

// take records msg as held (nil is ignored: a shard computed without its
// task).
func (h *holdings) take(msg jetstream.Msg) {
	if msg == nil {
		return
	}
	h.mu.Lock()
	h.msgs[msg] = struct{}{}
	h.mu.Unlock()
}

// settle records that msg is no longer held: it is acknowledged, handed
// back or dropped, or about to be.
func (h *holdings) settle(msg jetstream.Msg) {
	if msg == nil {
		return
	}
	h.mu.Lock()
	delete(h.msgs, msg)
	h.mu.Unlock()
}

// nak, term and ack answer msg for good, taking it out of the holdings
// first, so that the keeper sends no InProgress after the answer (see
// keep). nak hands it back for redelivery after delay (0: at once; a Nak
// without a delay is what NakWithDelay sends for 0), term drops it, ack
// acknowledges it.
func (h *holdings) nak(msg jetstream.Msg, delay time.Duration) {
	h.settle(msg)
	_ = msg.NakWithDelay(delay)
}

func (h *holdings) term(msg jetstream.Msg) {
	h.settle(msg)
	_ = msg.Term()
}

func (h *holdings) ack(msg jetstream.Msg) error {
	h.settle(msg)
	return msg.Ack()
}

// len is how many tasks are held.
func (h *holdings) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

// keep sends InProgress for every task held, every period()'s worth of
// time and when nudged (keepNow), until ctx ends. period is read again at
// each round (the consumer's ack wait is known only once the worker has
// found it).
//
// A round holds the lock while it sends: a task settled meanwhile may have
// been handed back with a delay, which an InProgress after it would cancel
// (the broker would then wait a whole ack wait). Sending only queues each
// message on the connection, so a hand-back waiting for the lock goes out
// after the round's InProgress.
func (h *holdings) keep(ctx context.Context, period func() time.Duration) {
	for {
		t := time.NewTimer(period())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-h.nudge:
			t.Stop()
		}
		h.mu.Lock()
		for msg := range h.msgs {
			_ = msg.InProgress()
		}
		h.mu.Unlock()
	}
}
