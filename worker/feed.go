package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
	held     *holdings        // every task taken is recorded there
	ackWait  *atomic.Int64    // the consumer's, in nanoseconds: the pace's limit follows it
	lost     chan nats.Status // the connection's RECONNECTING events
	draining bool             // it asks for no more tasks; what it holds is taken before a new one opens
	drainEnd time.Time        // when a new one opens anyway

	// How the feed takes tasks: see handPace.
	pace  handPace
	queue []jetstream.Msg // tasks taken out of an iterator on a switch, handed over first
	busy  time.Duration   // the caller's time since the last task taken, waits left out
	// discounted: the task the caller holds is not to count in the pace.
	discounted bool
	returned   time.Time       // when next last returned
	ctx        context.Context // ended by close: it ends a fetch under way
	cancel     context.CancelFunc
	watched    bool // the last switch to no hand was the watch's, not the pace's

	// The hand's watch (see watch) and the task loop share these:
	lastTake atomic.Int64 // when the caller last took a task (Unix nanoseconds)
	using    atomic.Bool  // the caller is taking a task: the iterator is its
	rescue   atomic.Bool  // the watch took the hand away (rescued): the feed keeps none

	mu      sync.Mutex // it, closed and rescued: close and watch come from other goroutines
	it      jetstream.MessagesContext
	closed  bool
	rescued []jetstream.Msg // taken out of the iterator by the watch, for the queue
}

// openFeed starts delivering cons's tasks over nc, prefetch of them at most
// in hand, and records every task taken in held. ackWait is the consumer's,
// read at every task taken (it may change): the feed keeps no hand while
// the caller's last prefetch tasks took longer than a third of it (see
// handPace).
func openFeed(nc *nats.Conn, cons jetstream.Consumer, held *holdings, ackWait *atomic.Int64) (*taskFeed, error) {
	f := &taskFeed{cons: cons, nc: nc, held: held, ackWait: ackWait, lost: nc.StatusChanged(nats.RECONNECTING)}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if err := f.open(); err != nil {
		nc.RemoveStatusListener(f.lost)
		f.cancel()
		return nil, err
	}
	f.lastTake.Store(time.Now().UnixNano())
	go f.watch()
	return f, nil
}

// open starts a new iterator, unless the feed is closed or keeps no hand.
func (f *taskFeed) open() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return jetstream.ErrMsgIteratorClosed
	}
	f.draining = false
	if f.pace.single {
		f.it = nil
		return nil
	}
	it, err := f.cons.Messages(jetstream.PullMaxMessages(prefetch),
		jetstream.PullThresholdMessages(prefetch-1), // each task taken asks for one more
		jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return err
	}
	f.it = it
	return nil
}

// next returns the next task, waiting for it up to maxWait, or as long as
// it takes when maxWait is 0. It returns errFeedClosed once the feed can
// deliver no more, and another error when no task came in time. The task
// is recorded in the feed's holdings, and the time the caller spent since
// the last one in its pace.
func (f *taskFeed) next(maxWait time.Duration) (jetstream.Msg, error) {
	if !f.returned.IsZero() {
		f.busy += time.Since(f.returned)
	}
	f.using.Store(true)
	defer f.using.Store(false)
	msg, err := f.take(maxWait)
	if err == nil {
		f.held.take(msg)
		f.pace.limit = time.Duration(f.ackWait.Load()) / 3
		switch {
		case f.discounted:
			f.discounted = false // the caller's time went to no task's work
		case f.pace.took(f.busy):
			// A failure to open what the pace calls for shows at the
			// next take.
			_ = f.switchHands()
		}
		f.busy = 0
	}
	f.returned = time.Now()
	if err == nil {
		f.lastTake.Store(f.returned.UnixNano())
	}
	return msg, err
}

// restartClock has the time the caller spends on the task it holds count
// from now on.
func (f *taskFeed) restartClock() {
	f.busy, f.returned = 0, time.Now()
}

// discount leaves the task the caller holds out of the pace: it handed it
// back, or dropped it, without computing it. Those take a moment each, and
// a run of them (after a recovery, or before a run's first snapshot) would
// bring a hand back while the tasks that are computed are slow.
func (f *taskFeed) discount() { f.discounted = true }

// take is next without the bookkeeping.
func (f *taskFeed) take(maxWait time.Duration) (jetstream.Msg, error) {
	if f.rescue.Load() {
		// The watch took the hand while the caller was away: its tasks
		// (those it has not handed back) come first, then one task at a
		// time, until the pace says the tasks are quick again.
		f.mu.Lock()
		f.queue = append(f.queue, f.rescued...)
		f.rescued = nil
		f.rescue.Store(false)
		f.mu.Unlock()
		f.pace.single, f.watched = true, true
	}
	if len(f.queue) > 0 {
		msg := f.queue[0]
		f.queue = f.queue[1:]
		return msg, nil
	}
	if f.pace.single {
		return f.fetch(maxWait)
	}
	f.mu.Lock()
	it := f.it
	f.mu.Unlock()
	if it == nil {
		if err := f.open(); err != nil {
			return nil, errors.Join(errFeedClosed, err)
		}
		f.mu.Lock()
		it = f.it
		f.mu.Unlock()
	}
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

// switchHands takes every task the iterator holds, and what was on its way
// to it, into the queue (recorded as held, so kept alive from now on), and
// opens what the pace now calls for: an iterator, or none.
func (f *taskFeed) switchHands() error {
	f.mu.Lock()
	it := f.it
	f.mu.Unlock()
	if it != nil {
		f.queue = append(f.queue, f.drain(it)...)
		f.mu.Lock()
		f.it = nil
		f.mu.Unlock()
	}
	return f.open()
}

// drain takes every task it holds, and what was on its way to it, records
// them as held and has the keeper go through them at once (they have waited
// since the hand was delivered), and stops it.
func (f *taskFeed) drain(it jetstream.MessagesContext) []jetstream.Msg {
	var msgs []jetstream.Msg
	it.Drain()
	end := time.Now().Add(drainBound)
	for time.Now().Before(end) {
		msg, err := it.Next(jetstream.NextMaxWait(max(time.Until(end), time.Millisecond)))
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			continue // a heartbeat missed before the drain: the rest still comes
		}
		if err != nil {
			break
		}
		f.held.take(msg)
		msgs = append(msgs, msg)
	}
	it.Stop()
	f.held.keepNow()
	return msgs
}

// watch guards the hand while the caller is away from the feed (computing
// a task, setting a run up, waiting for other workers' shards), until the
// feed closes. The pace lets a hand be kept only while the last tasks were
// quick, but it learns that a task is slow only once the task ends, and
// the tasks in the hand cannot be kept alive while they are in the client:
// so once the caller has taken no task for a third of the ack wait, the
// watch takes what the iterator holds into the holdings (kept alive from
// then on) and the feed keeps no hand. The hand's oldest task had waited
// about a third of the ack wait at most when the caller last took one
// (the pace's limit), so it has waited about two thirds and a twelfth at
// most when taken. Once the caller has been away a whole ack wait, the
// watch hands those tasks back, none of them begun, for other workers to
// compute: so a hand waits no longer for a caller far slower than
// expected than it did before it was kept alive.
func (f *taskFeed) watch() {
	for {
		limit := time.Duration(f.ackWait.Load()) / 3
		every := min(limit/4, watchMax)
		if every <= 0 {
			every = watchMax // no ack wait known: the watch does nothing
		}
		select {
		case <-f.ctx.Done():
			return
		case <-time.After(every):
		}
		if limit <= 0 {
			continue
		}
		away := time.Since(time.Unix(0, f.lastTake.Load()))
		if away >= limit {
			f.takeHand()
		}
		if away >= 3*limit {
			f.handBack()
		}
	}
}

// watchMax bounds the watch's period, so that it soon goes by a shorter
// ack wait than the one it last read.
const watchMax = time.Second

// takeHand takes the iterator away from a caller that is not using it, and
// what it holds into rescued. An iterator that held nothing is let go all
// the same (a new one asks the broker for a hand at the next take), but the
// feed keeps a hand: there was none to lose. It drains the iterator under
// the feed's lock: a close or a take waits for that, about a round trip,
// or up to drainBound while the broker is away.
func (f *taskFeed) takeHand() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.it == nil || f.using.Load() {
		return
	}
	msgs := f.drain(f.it)
	f.it = nil
	if len(msgs) == 0 {
		f.lastTake.Store(time.Now().UnixNano()) // the new hand's wait starts now
		return
	}
	f.rescued = append(f.rescued, msgs...)
	f.rescue.Store(true)
}

// handBack hands the rescued tasks back to the broker, for any worker.
func (f *taskFeed) handBack() {
	f.mu.Lock()
	msgs := f.rescued
	f.rescued = nil
	f.mu.Unlock()
	for _, msg := range msgs {
		f.held.nak(msg, 0)
	}
}

// fetch takes one task from the consumer when the feed keeps no hand,
// waiting up to maxWait, or as long as it takes when maxWait is 0. A fetch
// asks the broker for exactly one task, so none waits unseen in the client
// while the caller computes. A wait under fetchFloor (a look at what is in
// hand, between two shards or while a replica waits) finds nothing: no
// task is in hand, and a fetch for each look would take tasks other
// workers could compute.
func (f *taskFeed) fetch(maxWait time.Duration) (jetstream.Msg, error) {
	select {
	case <-f.lost: // no hand to mend: the next fetch asks anew
	default:
	}
	if maxWait > 0 && maxWait < fetchFloor {
		return nil, nats.ErrTimeout
	}
	for {
		if f.ctx.Err() != nil {
			return nil, errors.Join(errFeedClosed, f.ctx.Err())
		}
		wait := maxWait
		if wait == 0 {
			wait = fetchWait
		}
		opts := []jetstream.FetchOpt{}
		if wait >= fetchWait {
			// A fetch whose server went away (a reconnect to another)
			// ends at its missed heartbeats, not at its expiry.
			opts = append(opts, jetstream.FetchHeartbeat(time.Second))
		}
		ctx, cancel := context.WithTimeout(f.ctx, wait)
		msg, err := f.cons.Next(append(opts, jetstream.FetchContext(ctx))...)
		cancel()
		if err == nil {
			return msg, nil
		}
		if err = f.fetchFailed(err); maxWait > 0 || errors.Is(err, errFeedClosed) {
			return nil, err
		}
		if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			// The broker is away (reconnecting), or the consumer is gone:
			// the worker looks it up again then, as when an iterator
			// ends.
			if f.consumerGone() {
				return nil, errors.Join(errFeedClosed, err)
			}
			select {
			case <-f.ctx.Done():
			case <-time.After(fetchRetry):
			}
		}
	}
}

// consumerGone reports whether the broker says the feed's consumer no
// longer exists.
func (f *taskFeed) consumerGone() bool {
	ctx, cancel := context.WithTimeout(f.ctx, fetchRetry)
	defer cancel()
	_, err := f.cons.Info(ctx)
	return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted)
}

// fetchFailed is errFeedClosed joined to err once the feed is closed or its
// connection is, and err otherwise.
func (f *taskFeed) fetchFailed(err error) error {
	if f.ctx.Err() != nil || f.nc.IsClosed() {
		return errors.Join(errFeedClosed, err)
	}
	return err
}

const (
	// fetchFloor is the shortest wait a fetch is asked for; shorter ones
	// only look at what is in hand.
	fetchFloor = 50 * time.Millisecond
	// fetchWait is how long one fetch waits when the caller would wait
	// for ever: the next fetch asks again.
	fetchWait = 5 * time.Second
	// fetchRetry is the pause before a fetch that failed is asked again.
	fetchRetry = 100 * time.Millisecond
)

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
	f.cancel()
	if f.it != nil {
		f.it.Stop()
	}
	f.nc.RemoveStatusListener(f.lost)
}

// shut closes the feed and returns the tasks taken out of its iterator
// that the caller has not taken: they are held, and are the caller's to
// hand back.
func (f *taskFeed) shut() []jetstream.Msg {
	f.close()
	f.mu.Lock()
	defer f.mu.Unlock()
	rest := append(f.queue, f.rescued...)
	f.queue, f.rescued = nil, nil
	f.rescue.Store(false)
	return rest
}

// handPace chooses how a worker's feed takes tasks from the time its
// worker spends on each (busy: from one task taken to the next, waits for
// tasks left out). A hand of prefetch tasks waits in the client while the
// worker computes; the last of a hand waits for all the others, and the
// broker redelivers a task not acknowledged within the consumer's ack wait
// (the keeper reaches only the tasks taken: see holdings). So while the
// last prefetch tasks took longer together than limit, a third of the ack
// wait, the feed keeps no hand: it fetches each task when it is wanted, a
// round trip per task (about a millisecond, next to tasks of 0.4 s or more
// each under the default ten-second ack wait). It keeps a hand again once
// the last prefetch tasks took under half the limit together. A single
// long task (or wait in one, for a stalled run) among quick ones keeps the
// hand while it is under the limit: the tasks waiting behind it are quick.
// Tasks handed back or dropped without being computed are left out
// (taskFeed.discount).
type handPace struct {
	limit  time.Duration // 0: a hand always
	single bool          // no hand: a fetch per task
	recent [prefetch]time.Duration
	next   int           // where the next task's time goes in recent
	sum    time.Duration // of recent
	last   time.Duration // the last task's time, for the worker's log
}

// took records a task that took busy, and reports whether the feed is to
// switch.
func (p *handPace) took(busy time.Duration) bool {
	p.last = busy
	if p.limit <= 0 {
		return false
	}
	p.sum += busy - p.recent[p.next]
	p.recent[p.next] = busy
	p.next = (p.next + 1) % len(p.recent)
	switch {
	case !p.single && p.sum > p.limit:
		p.single = true
		return true
	case p.single && p.sum < p.limit/2:
		p.single = false
		return true
	}
	return false
}
