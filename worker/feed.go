package worker

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// errFeedClosed is what taskFeed.next returns once the feed can deliver no
// more: it was closed, or its consumer's subscription ended (the consumer
// was deleted, or the connection closed).
var errFeedClosed = errors.New("worker: task feed closed")

// taskFeed hands the task loop the tasks the workers' shared consumer
// delivers to this worker, one at a time: up to prefetch of them are in
// hand (delivered, not yet taken) while the loop computes one, each task
// taken asking the broker for one more.
//
// It reads the consumer through its iterator, and mends the iterator's one
// weakness: on reconnecting, the iterator asks the broker for a full hand
// again whatever it still holds, and its buffer, only a hand deep, drops
// the surplus as a slow consumer, to come back only after the ack wait. So
// once the connection has been lost, the feed drains the iterator — it
// asks for nothing more, and hands over what it holds and what was on its
// way — and then opens a new one (TestTasksInHandSurviveABrokerRestart).
// The consumer's callback delivery does not drop them, but it asks for
// more only as tasks arrive, and went silent for two seconds, until its
// heartbeat check fired, in a third of the benchmark runs.
type taskFeed struct {
	cons     jetstream.Consumer
	nc       *nats.Conn
	lost     chan nats.Status // the connection's RECONNECTING events
	draining bool             // it asks for no more tasks; what it holds is taken before a new one opens
	drainEnd time.Time        // when a new one opens anyway

	mu     sync.Mutex // it and closed: close may come from another goroutine
	it     jetstream.MessagesContext
	closed bool
}

// openFeed starts delivering cons's tasks over nc, prefetch of them at most
// in hand.
func openFeed(nc *nats.Conn, cons jetstream.Consumer) (*taskFeed, error) {
	f := &taskFeed{cons: cons, nc: nc, lost: nc.StatusChanged(nats.RECONNECTING)}
	if err := f.open(); err != nil {
		nc.RemoveStatusListener(f.lost)
		return nil, err
	}
	return f, nil
}

// open starts a new iterator, unless the feed is closed.
func (f *taskFeed) open() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return jetstream.ErrMsgIteratorClosed
	}
	it, err := f.cons.Messages(jetstream.PullMaxMessages(prefetch),
		jetstream.PullThresholdMessages(prefetch-1), // each task taken asks for one more
		jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return err
	}
	f.it, f.draining = it, false
	return nil
}

// next returns the next task, waiting for it up to maxWait, or as long as
// it takes when maxWait is 0. It returns errFeedClosed once the feed can
// deliver no more, and another error when no task came in time.
func (f *taskFeed) next(maxWait time.Duration) (jetstream.Msg, error) {
	f.mu.Lock()
	it := f.it
	f.mu.Unlock()
	select {
	case <-f.lost:
		if !f.draining {
			it.Drain()
			f.draining, f.drainEnd = true, time.Now().Add(drainBound)
		}
	default:
	}
	if f.draining {
		// What the iterator holds, and what was on its way to it when the
		// broker took the end of its pull, comes before the drain ends.
		wait := time.Until(f.drainEnd)
		if maxWait > 0 && maxWait < wait {
			wait = maxWait
		}
		msg, err := it.Next(jetstream.NextMaxWait(max(wait, time.Millisecond)))
		if err == nil {
			return msg, nil
		}
		if !errors.Is(err, jetstream.ErrMsgIteratorClosed) && time.Now().Before(f.drainEnd) {
			return nil, err
		}
		it.Stop()
		if err := f.open(); err != nil {
			return nil, errors.Join(errFeedClosed, err)
		}
		f.mu.Lock()
		it = f.it
		f.mu.Unlock()
	}
	var opts []jetstream.NextOpt
	if maxWait > 0 {
		opts = append(opts, jetstream.NextMaxWait(maxWait))
	}
	msg, err := it.Next(opts...)
	if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
		return nil, errors.Join(errFeedClosed, err)
	}
	return msg, err
}

// drainBound bounds the drain of an iterator after a lost connection: past
// it, the feed opens a new one whatever the old one may still receive
// (which then comes back after its ack wait).
const drainBound = 5 * time.Second

// close stops the deliveries; the tasks in hand the loop did not take go
// back to the broker once their ack wait ends.
// It may be called from any goroutine, more than once.
func (f *taskFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	f.it.Stop()
	f.nc.RemoveStatusListener(f.lost)
}
