package worker

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/freeport"
	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/protocol"
)

// TestTasksInHandSurviveABrokerRestart restarts the broker while a worker
// computes a task and its feed holds the rest of a hand. On reconnecting,
// the consumer asks for a full hand again; every task must then reach the
// loop once, at once, none dropped to come back only after the ack wait (a
// minute here) as a redelivery.
func TestTasksInHandSurviveABrokerRestart(t *testing.T) {
	b := startRestartable(t)
	const tasks = 3 * prefetch
	b.publish(t, 0, tasks)
	feed := b.feed(t)
	got := taker(t, feed, tasks)
	got.take(t, time.Now().Add(10*time.Second)) // the task being computed
	// The rest of the first hand: one more is asked for at the next take.
	poll(t, &syncbuf.Buffer{}, "the rest of a hand delivered", func() bool { return b.inHand(t) == prefetch-1 })

	b.restart(t)
	deadline := time.Now().Add(20 * time.Second)
	for len(got.seen) < tasks {
		got.take(t, deadline)
	}
}

// TestTasksAfterABrokerRestartAreAllTaken: a worker waiting for a task
// while the broker restarts asks for a full hand on reconnecting; the feed
// then replaces that iterator, and none of the tasks on their way to it may
// be lost.
func TestTasksAfterABrokerRestartAreAllTaken(t *testing.T) {
	b := startRestartable(t)
	feed := b.feed(t)
	const tasks = 3 * prefetch
	type result struct {
		msg jetstream.Msg
		err error
	}
	first := make(chan result, 1)
	go func() {
		msg, err := feed.next(0) // waiting through the restart
		first <- result{msg, err}
	}()
	poll(t, &syncbuf.Buffer{}, "a pull waiting", func() bool {
		info, err := b.cons.Info(context.Background())
		return err == nil && info.NumWaiting > 0
	})
	b.restart(t)
	b.publish(t, 0, tasks)
	r := <-first
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := taker(t, feed, tasks)
	got.accept(t, r.msg)
	deadline := time.Now().Add(20 * time.Second)
	for len(got.seen) < tasks {
		got.take(t, deadline)
	}
}

// restartable is a JetStream server with the streams in place that a test
// can restart on the same port and store, and a client that reconnects.
type restartable struct {
	opts server.Options
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	cons jetstream.Consumer
}

func startRestartable(t *testing.T) *restartable {
	t.Helper()
	return startBroker(t, time.Minute)
}

// startBroker is startRestartable with the task consumer's ack wait.
func startBroker(t *testing.T, ackWait time.Duration) *restartable {
	t.Helper()
	port, err := freeport.Stable()
	if err != nil {
		t.Fatal(err)
	}
	b := &restartable{opts: server.Options{Port: port, JetStream: true, StoreDir: t.TempDir(), MaxPayload: protocol.MaxPayload}}
	b.srv = natstest.Start(t, b.opts)
	if b.nc, err = nats.Connect(b.srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.nc.Close)
	b.js, _ = jetstream.New(b.nc)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, b.js, 1, ackWait); err != nil {
		t.Fatal(err)
	}
	if b.cons, err = b.js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer); err != nil {
		t.Fatal(err)
	}
	return b
}

// restart stops the server and starts it again, and waits for the client
// to reconnect.
func (b *restartable) restart(t *testing.T) {
	t.Helper()
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	b.srv = natstest.Start(t, b.opts)
	poll(t, &syncbuf.Buffer{}, "the reconnection", b.nc.IsConnected)
}

// publish stores tasks from..to-1, each its number as its body.
func (b *restartable) publish(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := b.js.Publish(context.Background(), fmt.Sprintf("jt.tasks.r.%d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func (b *restartable) feed(t *testing.T) *taskFeed {
	t.Helper()
	feed, err := openFeed(b.nc, b.cons, newHoldings(), ackWaitOf(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(feed.close)
	return feed
}

// inHand is how many tasks the consumer has delivered and not had acked.
func (b *restartable) inHand(t *testing.T) int {
	info, err := b.cons.Info(context.Background())
	if err != nil {
		return -1
	}
	return info.NumAckPending
}

// takenTasks takes tasks from a feed as a worker's loop does, checking
// that each comes once and on its first delivery.
type takenTasks struct {
	feed  *taskFeed
	total int
	seen  map[string]bool
}

func taker(t *testing.T, feed *taskFeed, total int) *takenTasks {
	return &takenTasks{feed: feed, total: total, seen: map[string]bool{}}
}

func (g *takenTasks) take(t *testing.T, deadline time.Time) {
	t.Helper()
	msg, err := g.feed.next(time.Until(deadline))
	if err != nil {
		t.Fatalf("%d of %d tasks reached the loop (%v): the others were dropped, and come back only after the ack wait", len(g.seen), g.total, err)
	}
	g.accept(t, msg)
}

func (g *takenTasks) accept(t *testing.T, msg jetstream.Msg) {
	t.Helper()
	md, err := msg.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if md.NumDelivered != 1 {
		t.Fatalf("task %s was delivered %d times", msg.Data(), md.NumDelivered)
	}
	if g.seen[string(msg.Data())] {
		t.Fatalf("task %s reached the loop twice", msg.Data())
	}
	g.seen[string(msg.Data())] = true
	if err := msg.DoubleAck(context.Background()); err != nil {
		t.Fatal(err)
	}
}
