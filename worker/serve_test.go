package worker

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// failingGets is a runs bucket whose reads fail with err, as a read whose
// request the broker never answered does.
type failingGets struct {
	jetstream.KeyValue
	err error
}

func (f failingGets) Get(context.Context, string) (jetstream.KeyValueEntry, error) { return nil, f.err }

// TestATaskWhoseRunIsOutOfReachGoesBack: a task whose run's config could
// not be read (the read timed out) is handed back and comes again; a task
// of a run the bucket does not hold is dropped, and the work queue no
// longer holds it. Both on real JetStream, through serve.
func TestATaskWhoseRunIsOutOfReachGoesBack(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	p := startedRun(t, js)
	cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(nc, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	w.kv = failingGets{err: context.DeadlineExceeded}

	publish(t, js, protocol.TasksSubject(p.Run), &protocol.Task{Run: p.Run, Step: 0, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}})
	msg := fetchOne(t, cons)
	w.serve(ctx, msg)
	again := fetchOne(t, cons)
	if md, _ := again.Metadata(); md == nil || md.Sequence.Stream != mustMeta(t, msg).Sequence.Stream || md.NumDelivered != 2 {
		t.Fatalf("after a timed-out read of its run: delivered %+v, want the same task again", md)
	}

	w.kv = failingGets{err: jetstream.ErrKeyNotFound}
	w.serve(ctx, again)
	stream, err := js.Stream(ctx, protocol.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) { // polling interval
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a task of a run missing from the bucket: the queue holds %d tasks, want it dropped", info.State.Msgs)
		}
	}
}

// fetchOne takes the next task from cons, failing the test if none comes
// within a few seconds.
func fetchOne(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("no task: %v", err)
	}
	return msg
}

func mustMeta(t *testing.T, msg jetstream.Msg) *jetstream.MsgMetadata {
	t.Helper()
	md, err := msg.Metadata()
	if err != nil {
		t.Fatalf("task metadata: %v", err)
	}
	return md
}
