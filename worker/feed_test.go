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
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/protocol"
)

// TestTasksInHandSurviveABrokerRestart restarts the broker while a worker
// computes a task and its feed holds a full hand of others. On
// reconnecting, the consumer asks for a full hand again; every task must
// then reach the loop once, at once, none dropped to come back only after
// the ack wait (a minute here) as a redelivery.
func TestTasksInHandSurviveABrokerRestart(t *testing.T) {
	port, err := freeport.Stable()
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, MaxPayload: protocol.MaxPayload}
	start := func() *server.Server {
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		return srv
	}
	srv := start()
	t.Cleanup(func() { srv.Shutdown() })
	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	const tasks = 3 * prefetch
	for i := range tasks {
		if _, err := js.Publish(ctx, fmt.Sprintf("jt.tasks.r.%d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	feed, err := openFeed(nc, cons)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.close()
	seen := map[string]bool{}
	take := func(deadline time.Time) {
		t.Helper()
		msg, err := feed.next(time.Until(deadline))
		if err != nil {
			t.Fatalf("%d of %d tasks reached the loop (%v): the others were dropped, and come back only after the ack wait", len(seen), tasks, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.NumDelivered != 1 {
			t.Fatalf("task %s was delivered %d times", msg.Data(), md.NumDelivered)
		}
		if seen[string(msg.Data())] {
			t.Fatalf("task %s reached the loop twice", msg.Data())
		}
		seen[string(msg.Data())] = true
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	take(time.Now().Add(10 * time.Second)) // the task being computed
	inHand := func() int {
		info, err := cons.Info(ctx)
		if err != nil {
			return -1
		}
		return info.NumAckPending
	}
	// The rest of the first hand: one more is asked for at the next take.
	poll(t, &syncbuf.Buffer{}, "the rest of a hand delivered", func() bool { return inHand() == prefetch-1 })

	srv.Shutdown()
	srv.WaitForShutdown()
	srv = start()
	poll(t, &syncbuf.Buffer{}, "the reconnection", nc.IsConnected)

	deadline := time.Now().Add(20 * time.Second)
	for len(seen) < tasks {
		take(deadline)
	}
}
