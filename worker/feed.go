package worker

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errFeedClosed is what taskFeed.next returns once the feed is closed, or
// its consumer's subscription ended (the consumer was deleted, or the
// connection closed).
var errFeedClosed = errors.New("worker: task feed closed")

// errNoTask is what taskFeed.next returns when no task came in the time it
// was given.
var errNoTask = errors.New("worker: no task in hand")

// taskFeed hands the task loop, one at a time, the tasks the workers'
// shared consumer delivers to this worker: up to prefetch of them are in
// hand (delivered, not yet taken) while the loop computes one.
//
// It is built on the consumer's callback delivery, whose subscription
// queues what the broker sends, rather than on its iterator, whose buffer
// holds only as many tasks as it asks for: on reconnecting, both ask the
// broker for a full hand again whatever they still hold, and the iterator
// then dropped the surplus as a slow consumer, to come back only after the
// ack wait (TestTasksInHandSurviveABrokerRestart). The callback blocks until
// the loop takes its task, so the consumer asks for more only as tasks are
// taken, as the iterator did.
type taskFeed struct {
	cc    jetstream.ConsumeContext
	tasks chan jetstream.Msg // unbuffered: a delivered task waits in the callback
	stop  chan struct{}
	once  sync.Once
}

// openFeed starts delivering cons's tasks, prefetch of them at most in hand.
func openFeed(cons jetstream.Consumer, prefetch int, onErr func(error)) (*taskFeed, error) {
	f := &taskFeed{tasks: make(chan jetstream.Msg), stop: make(chan struct{})}
	cc, err := cons.Consume(f.deliver,
		jetstream.PullMaxMessages(prefetch),
		jetstream.PullThresholdMessages(prefetch-1), // each task taken asks for one more
		jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) { onErr(err) }))
	if err != nil {
		return nil, err
	}
	f.cc = cc
	return f, nil
}

// deliver is the consumer's callback: it waits for the loop to take msg. A
// task delivered after close goes straight back to the broker.
func (f *taskFeed) deliver(msg jetstream.Msg) {
	select {
	case f.tasks <- msg:
	case <-f.stop:
		_ = msg.Nak()
	}
}

// next returns the next task, waiting for it up to maxWait, or as long as
// it takes when maxWait is 0. It returns errNoTask when the wait ran out
// and errFeedClosed once the feed can deliver no more.
func (f *taskFeed) next(maxWait time.Duration) (jetstream.Msg, error) {
	var timeout <-chan time.Time
	if maxWait > 0 {
		t := time.NewTimer(maxWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case msg := <-f.tasks:
		return msg, nil
	case <-f.stop:
		return nil, errFeedClosed
	case <-f.cc.Closed():
		return nil, errFeedClosed
	case <-timeout:
		return nil, errNoTask
	}
}

// close stops the deliveries. The tasks in hand that the loop did not take
// go back to the broker at once (a Nak each), not after their ack wait.
func (f *taskFeed) close() {
	f.once.Do(func() {
		close(f.stop)
		f.cc.Drain()
	})
}
