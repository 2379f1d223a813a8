package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/model"
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
// not be read (the read timed out) is handed back and comes again; so is,
// on its first deliveries, a task of a run the bucket does not hold (a
// follower of a replicated bucket may not have stored it yet), which is
// dropped on its third, and the work queue no longer holds it. All on real
// JetStream, through serve.
func TestATaskWhoseRunIsOutOfReachGoesBack(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	p := startedRun(t, js)
	cons, w := taskServer(t, nc, js)

	w.kv = failingGets{err: context.DeadlineExceeded}
	publish(t, js, protocol.TasksSubject(p.Run), &protocol.Task{Run: p.Run, Step: 0, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}})
	msg := fetchOne(t, cons)
	w.serve(ctx, msg)
	msg = sameTaskAgain(t, cons, msg, 2, "after a timed-out read of its run")

	w.kv = failingGets{err: jetstream.ErrKeyNotFound}
	w.serve(ctx, msg)
	msg = sameTaskAgain(t, cons, msg, 3, "a run not found on the task's second delivery")
	w.serve(ctx, msg)
	if kept := handled(t, js, cons); kept {
		t.Fatal("a task of a run not found on its third delivery is still in the queue, want it dropped")
	}
}

// TestATaskWhoseDatasetThisWorkerLacksGoesBack: a worker that cannot load
// a run's dataset (no local copy, nothing to fetch it from) hands its task
// back, for another worker or for a later try, rather than dropping it, and
// remembers the failure so the tasks it takes meanwhile do not try again.
func TestATaskWhoseDatasetThisWorkerLacksGoesBack(t *testing.T) {
	defer func(d time.Duration) { datasetRetry = d }(datasetRetry)
	datasetRetry = 300 * time.Millisecond
	nc, js := startJetStream(t)
	ctx := context.Background()
	cfg := registerConfig(t, js, "dataset=fashion-mnist", "data_dir="+t.TempDir(), "hidden=[8]", "batch_size=8", "shards=2")
	cons, w := taskServer(t, nc, js)
	runs, err := js.KeyValue(ctx, protocol.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	w.kv = runs
	publish(t, js, protocol.TasksSubject(cfg.Signature()), &protocol.Task{Run: cfg.Signature(), Step: 0, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}})
	msg := fetchOne(t, cons)
	w.serve(ctx, msg)
	if f, ok := w.runs.noData[cfg.Signature()]; !ok || !errors.Is(f.err, errNoDataset) {
		t.Fatalf("the worker does not remember that the dataset failed to load: %+v", f)
	}
	sameTaskAgain(t, cons, msg, 2, "a task whose dataset the worker cannot load")
}

// taskServer is the workers' task consumer and a worker, not running,
// whose serve the test calls with the tasks it takes from it.
func taskServer(t *testing.T, nc *nats.Conn, js jetstream.JetStream) (jetstream.Consumer, *Worker) {
	t.Helper()
	cons, err := js.Consumer(context.Background(), protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(nc, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return cons, w
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

// sameTaskAgain takes the next task from cons and fails the test unless it
// is prev's, delivered for the n-th time.
func sameTaskAgain(t *testing.T, cons jetstream.Consumer, prev jetstream.Msg, n uint64, what string) jetstream.Msg {
	t.Helper()
	was, err := prev.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	msg := fetchOne(t, cons)
	md, err := msg.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	if md.Sequence.Stream != was.Sequence.Stream || md.NumDelivered != n {
		t.Fatalf("%s: delivered task %d for the %d-th time, want task %d again (delivery %d)", what, md.Sequence.Stream, md.NumDelivered, was.Sequence.Stream, n)
	}
	return msg
}

// handled waits until the task a worker was given is no longer pending an
// acknowledgment, and reports whether the work queue kept it (handed back)
// rather than dropped it.
func handled(t *testing.T, js jetstream.JetStream, cons jetstream.Consumer) (kept bool) {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) { // polling interval
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the task is still pending acknowledgment: %+v", info)
		}
	}
	stream, err := js.Stream(ctx, protocol.TasksStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs > 0
}

// TestATaskOfARunLargerThanItsDatasetIsDropped: a run whose batch is larger
// than its training set (which its coordinator refuses to train) has no
// steps; a task for it is dropped, not served (its step would divide by
// the zero steps of an epoch).
func TestATaskOfARunLargerThanItsDatasetIsDropped(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	cfg := registerConfig(t, js, "dataset=synthetic", "hidden=[8]", fmt.Sprintf("batch_size=%d", 2*model.SyntheticTrain), "shards=2")
	cons, w := taskServer(t, nc, js)
	runs, err := js.KeyValue(ctx, protocol.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	w.kv = runs
	indices := make([]int32, model.SyntheticTrain) // a shard's worth, every sample once
	for i := range indices {
		indices[i] = int32(i)
	}
	publish(t, js, protocol.TasksSubject(cfg.Signature()), &protocol.Task{Run: cfg.Signature(), Step: 0, Shard: 0, Shards: 2, Indices: indices})
	w.serve(ctx, fetchOne(t, cons))
	if handled(t, js, cons) {
		t.Fatal("the task of a run with no steps was handed back, not dropped")
	}
}

// TestAWorkerThatMayNotPublishGradientsSaysSo: a server that refuses the
// worker's NATS user the gradients' subjects says so only on the
// connection, and each publish waits in vain for its ack; the worker's
// warning names the refusal rather than guess at a full disk.
func TestAWorkerThatMayNotPublishGradientsSaysSo(t *testing.T) {
	admin, js := startJetStreamWith(t, server.Options{Users: []*server.User{
		{Username: "admin", Password: "a"},
		{Username: "worker", Password: "w", Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"jt.grads.>"}}}},
	}}, nats.UserInfo("admin", "a"))
	run := startedRun(t, js).Run
	nc, err := nats.Connect(admin.ConnectedUrl(), nats.UserInfo("worker", "w"), nats.NoEcho(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, logs, stop := runWorkerWith(t, nc, slog.LevelWarn, Options{})
	t.Cleanup(stop)
	publishStep0(t, js, run)
	poll(t, logs, "a warning that the user may not publish gradients", func() bool {
		return strings.Contains(logs.String(), "the NATS user may not publish gradients") && strings.Contains(logs.String(), "jt.grads.")
	})
	if strings.Contains(logs.String(), "disk is full") {
		t.Fatalf("the warning guesses at a full disk:\n%s", logs.String())
	}
}
