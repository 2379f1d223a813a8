package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/protocol"
)

// TestHeldTasksAreNotRedelivered holds a task for five ack waits under a
// keeper: the broker must not deliver it again meanwhile. Once settled
// (here without an answer), the keeper lets it go and it comes back.
func TestHeldTasksAreNotRedelivered(t *testing.T) {
	const ackWait = 300 * time.Millisecond
	b := startBroker(t, ackWait)
	b.publish(t, 0, 1)
	held := newHoldings()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go held.keep(ctx, func() time.Duration { return ackWait / 3 })

	msg, err := b.cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held.take(msg)
	if again, err := b.cons.Next(jetstream.FetchMaxWait(5 * ackWait)); err == nil {
		md, _ := again.Metadata()
		t.Fatalf("a held task was delivered again (delivery %d)", md.NumDelivered)
	}
	held.settle(msg)
	if held.len() != 0 {
		t.Fatalf("%d tasks held after the only one was settled", held.len())
	}
	again, err := b.cons.Next(jetstream.FetchMaxWait(5 * ackWait))
	if err != nil {
		t.Fatalf("a settled task the worker never answered did not come back: %v", err)
	}
	if md, _ := again.Metadata(); md.NumDelivered != 2 || string(again.Data()) != "0" {
		t.Fatalf("got task %s on delivery %d, want task 0 again", again.Data(), md.NumDelivered)
	}
}

// TestAFeedOfSlowTasksKeepsNoHand: once its caller takes longer over a
// task than its pace allows, a feed takes what its iterator holds into
// its holdings and fetches each task when it is asked for, so that the
// broker has delivered no more than the caller holds; after a run of
// quick tasks it keeps a hand again. No task is lost or delivered twice
// on the way.
func TestAFeedOfSlowTasksKeepsNoHand(t *testing.T) {
	b := startBroker(t, time.Minute)
	const tasks = 7 * prefetch
	b.publish(t, 0, tasks)
	held := newHoldings()
	feed, err := openFeed(b.nc, b.cons, held, ackWaitOf(10*time.Second)) // a hand may take 10 s / 3
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	got := taker(t, feed, tasks)
	deadline := time.Now().Add(20 * time.Second)
	got.take(t, deadline)
	poll(t, &syncbuf.Buffer{}, "the rest of a hand delivered", func() bool { return b.inHand(t) == prefetch-1 })

	// The caller spends four seconds on the first task: more than a third
	// of the feed's ack wait, which a whole hand may take.
	feed.returned = feed.returned.Add(-4 * time.Second)
	got.take(t, deadline)
	if !feed.pace.single {
		t.Fatal("the feed still keeps a hand after a task that took four seconds")
	}
	// What the iterator held (and the one it asked for at the first take)
	// moved into the feed's queue, held and kept alive.
	if n := len(feed.queue); n < prefetch-2 {
		t.Fatalf("%d tasks in the feed's queue after the switch, want the iterator's %d or more", n, prefetch-2)
	}
	for len(feed.queue) > 0 {
		got.take(t, deadline)
	}
	// Now each task is fetched when asked for: the broker has delivered
	// only the one taken (the others are acked).
	for range 3 {
		feed.returned = feed.returned.Add(-2 * time.Second)
		got.take(t, deadline)
		if n := b.inHand(t); n != 0 {
			t.Fatalf("%d tasks delivered and not acked, with none held: the feed keeps a hand", n)
		}
	}
	// A look at what is in hand finds nothing, and takes nothing from the
	// broker.
	if msg, err := feed.next(time.Millisecond); err == nil {
		t.Fatalf("a millisecond's look took task %s from the broker, with no hand", msg.Data())
	}
	if n := b.inHand(t); n != 0 {
		t.Fatalf("%d tasks delivered after a look at an empty hand", n)
	}
	// Tasks handed back without being computed (here: each one taken)
	// take a moment, and do not count: the hand stays away.
	for i := 0; i < 2*prefetch; i++ {
		got.take(t, deadline)
		feed.discount()
	}
	if !feed.pace.single {
		t.Fatal("tasks handed back uncomputed brought the hand back")
	}
	// Quick tasks bring the hand back.
	for i := 0; i < prefetch; i++ {
		got.take(t, deadline)
	}
	if feed.pace.single {
		t.Fatalf("no hand after %d quick tasks", prefetch)
	}
	got.take(t, deadline) // the new iterator asks for a hand at its first take
	poll(t, &syncbuf.Buffer{}, "a hand delivered again", func() bool { return b.inHand(t) >= prefetch-1 })
	for len(got.seen) < tasks {
		got.take(t, deadline)
	}
}

// TestHandPace: a hand goes once the last prefetch tasks took longer than
// the limit together, and comes back once they took under half of it. A
// lone long task among quick ones keeps the hand.
func TestHandPace(t *testing.T) {
	const limit = 800 * time.Millisecond
	p := handPace{limit: limit}
	if p.took(limit-10*time.Millisecond) || p.single {
		t.Fatal("a task of nearly the whole limit, alone, took the hand away")
	}
	for i := 0; i < prefetch-1; i++ {
		if p.took(time.Millisecond) {
			t.Fatalf("quick tasks after one long one took the hand away (task %d)", i+1)
		}
	}
	// The long task is out of the window now: a hand of 100 ms tasks is
	// 800 ms, at the limit, and one more pushes it over.
	for i := 0; i < prefetch; i++ {
		if p.took(100 * time.Millisecond) {
			t.Fatalf("a hand at the limit took the hand away (task %d)", i+1)
		}
	}
	if !p.took(101*time.Millisecond) || !p.single {
		t.Fatal("a hand over the limit left the hand")
	}
	// Back once the window holds under half the limit: 8 tasks of 49 ms
	// are 392 ms.
	for i := 0; i < prefetch-1; i++ {
		if p.took(49 * time.Millisecond) {
			t.Fatalf("the hand came back with %d quick tasks in the window", i+1)
		}
	}
	if !p.took(49*time.Millisecond) || p.single {
		t.Fatalf("no hand with %d quick tasks in the window", prefetch)
	}
	never := handPace{}
	if never.took(time.Hour) || never.single {
		t.Fatal("a pace with no limit switched")
	}
}

// TestAFeedWithoutAHandNoticesItsConsumerGone: a feed fetching one task at
// a time whose consumer is deleted says it is closed, as an iterator's end
// does, so that the worker looks the consumer up again; it does not ask
// the broker again for ever.
func TestAFeedWithoutAHandNoticesItsConsumerGone(t *testing.T) {
	b := startBroker(t, time.Minute)
	feed, err := openFeed(b.nc, b.cons, newHoldings(), ackWaitOf(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	feed.pace.single = true
	if err := feed.switchHands(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := b.js.Stream(ctx, protocol.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteConsumer(ctx, protocol.WorkersConsumer); err != nil {
		t.Fatal(err)
	}
	taken := make(chan error, 1)
	go func() {
		_, err := feed.next(0)
		taken <- err
	}()
	select {
	case err := <-taken:
		if !errors.Is(err, errFeedClosed) {
			t.Fatalf("next returned %v, want errFeedClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a feed whose consumer was deleted still waits for a task after 20 s")
	}
}

// TestAHandOutlastedByItsTaskIsNotComputedTwice: a worker takes a task and
// spends three ack waits on it (its first: the pace cannot know it is slow)
// while the rest of a hand waits in its client. The feed's watch takes the
// hand into the holdings once no task was taken for a third of the ack
// wait, keeps it alive, and hands it back once the worker has been away a
// whole ack wait: another worker computes those tasks, and the first,
// back, finds none of them in its hand. Left in the client, the hand would
// have gone to the other worker at its ack wait all the same, and come
// back to the first from its client's buffer: computed twice.
func TestAHandOutlastedByItsTaskIsNotComputedTwice(t *testing.T) {
	const ackWait = 2 * time.Second
	b := startBroker(t, ackWait)
	const tasks = prefetch // the first and the rest of a hand
	b.publish(t, 0, tasks)
	held := newHoldings()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go held.keep(ctx, func() time.Duration { return ackWait / 3 })
	feed, err := openFeed(b.nc, b.cons, held, ackWaitOf(ackWait))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	first, err := feed.next(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	taken := time.Now()
	poll(t, &syncbuf.Buffer{}, "the rest of a hand delivered", func() bool { return b.inHand(t) == tasks })

	// The slow task, while another worker asks for tasks.
	other := map[string]bool{}
	for end := taken.Add(3 * ackWait); time.Now().Before(end); {
		msg, err := b.cons.Next(jetstream.FetchMaxWait(time.Until(end)))
		if err != nil {
			continue
		}
		if since := time.Since(taken); since < ackWait/3 {
			t.Fatalf("task %s went to another worker %v after the first took its task", msg.Data(), since)
		}
		other[string(msg.Data())] = true
		if err := msg.DoubleAck(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(other) != tasks-1 || other[string(first.Data())] {
		t.Fatalf("the other worker computed tasks %v, want the %d of the hand", other, tasks-1)
	}
	if err := first.DoubleAck(context.Background()); err != nil {
		t.Fatal(err)
	}
	held.settle(first)
	if msg, err := feed.next(ackWait / 4); err == nil {
		t.Fatalf("the first worker, back, took task %s (delivery %d) that the other computed", msg.Data(), deliveries(msg))
	}
	if n := held.len(); n != 0 {
		t.Errorf("%d tasks still held with all of them done", n)
	}
}

// TestTheWatchLeavesAWaitingCallersHand: a caller waiting in the feed for
// a task is not away from it: the watch leaves its iterator alone (taking
// it would end the wait with the feed closed), and the task comes.
func TestTheWatchLeavesAWaitingCallersHand(t *testing.T) {
	b := startBroker(t, time.Minute)
	feed, err := openFeed(b.nc, b.cons, newHoldings(), ackWaitOf(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	type result struct {
		msg jetstream.Msg
		err error
	}
	got := make(chan result, 1)
	go func() {
		msg, err := feed.next(0)
		got <- result{msg, err}
	}()
	poll(t, &syncbuf.Buffer{}, "the caller waiting in the feed", feed.using.Load)
	feed.takeHand()
	b.publish(t, 0, 1)
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the caller's wait ended with %v", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the task published never reached the waiting caller")
	}
	if feed.pace.single {
		t.Error("the feed keeps no hand after the watch looked at a waiting caller")
	}
}

// TestAnEmptyHandTakenLeavesTheFeedAHand: the watch takes the iterator of
// a caller away from the feed that holds no task: there was no hand to
// lose, so the next take asks the broker for a new hand.
func TestAnEmptyHandTakenLeavesTheFeedAHand(t *testing.T) {
	b := startBroker(t, time.Minute)
	b.publish(t, 0, 1)
	feed, err := openFeed(b.nc, b.cons, newHoldings(), ackWaitOf(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	got := taker(t, feed, 2*prefetch+1)
	deadline := time.Now().Add(time.Minute)
	got.take(t, deadline)
	feed.takeHand() // the caller is away, with no task in hand
	b.publish(t, 1, 2*prefetch+1)
	got.take(t, deadline)
	if feed.pace.single {
		t.Fatal("the feed keeps no hand after the watch took an empty one")
	}
	poll(t, &syncbuf.Buffer{}, "a new hand delivered", func() bool { return b.inHand(t) == prefetch-1 })
}

// deliveries is how many times msg has been delivered.
func deliveries(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return md.NumDelivered
}
