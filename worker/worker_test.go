package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// startJetStream runs a real JetStream server with the streams and buckets
// in place, and connects to it.
func startJetStream(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return startJetStreamMaxStore(t, 0)
}

// startJetStreamMaxStore is startJetStream on a server whose JetStream
// store takes at most maxStore bytes (0: the server's default).
func startJetStreamMaxStore(t *testing.T, maxStore int64) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return startJetStreamWith(t, server.Options{JetStreamMaxStore: maxStore})
}

// startJetStreamWith is startJetStream on a server with opts (JetStream,
// its store and the max payload set here), connected with connOpts.
func startJetStreamWith(t *testing.T, opts server.Options, connOpts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts.JetStream, opts.StoreDir, opts.MaxPayload = true, t.TempDir(), protocol.MaxPayload
	srv := natstest.Start(t, opts)
	nc, err := nats.Connect(srv.ClientURL(), connOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := protocol.Ensure(context.Background(), js, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// registerRun puts a small run's config in the runs bucket, as its
// coordinator would, and returns it with its dataset and network.
func registerRun(t *testing.T, js jetstream.JetStream) (config.Config, *model.Dataset, *model.Network) {
	t.Helper()
	cfg := registerConfig(t, js, "dataset=synthetic", "hidden=[8]", "batch_size=8", "shards=2")
	ds, err := model.LoadDataset(cfg.Dataset, "")
	if err != nil {
		t.Fatal(err)
	}
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(net.Close)
	return cfg, ds, net
}

// registerConfig puts the config sets make in the runs bucket, as its
// run's coordinator would, and returns it.
func registerConfig(t *testing.T, js jetstream.JetStream, sets ...string) config.Config {
	t.Helper()
	cfg, err := config.Load("", sets)
	if err != nil {
		t.Fatal(err)
	}
	resolved, _ := json.Marshal(cfg)
	runs, err := js.KeyValue(context.Background(), protocol.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runs.Put(context.Background(), cfg.Signature(), resolved); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// firstSnapshot is the snapshot a coordinator publishes when cfg's run
// starts, with the run's optimizer, fresh.
func firstSnapshot(t *testing.T, cfg config.Config, ds *model.Dataset, net *model.Network) (protocol.Params, model.Optimizer) {
	t.Helper()
	w0 := net.Init(cfg.Seed)
	opt, err := cfg.NewOptimizer(ds.Train.N, len(w0))
	if err != nil {
		t.Fatal(err)
	}
	return protocol.Params{Run: cfg.Signature(), Step: 0, Check: model.Check(w0), Weights: w0, OptState: opt.MarshalState()}, opt
}

// runOf is the registered run sig as a worker holds it: its config, its
// dataset and network, and its replica (not started).
func runOf(t *testing.T, js jetstream.JetStream, sig string) *run {
	t.Helper()
	runs, _ := js.KeyValue(context.Background(), protocol.RunsBucket)
	cache := newRunCache("", nil, nil)
	t.Cleanup(cache.close)
	r, err := cache.get(context.Background(), runs, sig)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startedRun is a registered run with its first snapshot in place, as a
// coordinator leaves it when the run starts: that snapshot (p.Run is the
// run's signature).
func startedRun(t *testing.T, js jetstream.JetStream) protocol.Params {
	t.Helper()
	cfg, ds, net := registerRun(t, js)
	p, _ := firstSnapshot(t, cfg, ds, net)
	putSnapshot(t, js, &p)
	return p
}

// publishStep0 publishes both tasks of step 0 of run (of two shards).
func publishStep0(t *testing.T, js jetstream.JetStream, run string) {
	t.Helper()
	for shard := uint16(0); shard < 2; shard++ {
		publish(t, js, protocol.TasksSubject(run), &protocol.Task{Run: run, Step: 0, Shard: shard, Shards: 2, Indices: []int32{int32(4 * shard), int32(4*shard + 1), int32(4*shard + 2), int32(4*shard + 3)}})
	}
}

// serveUntil runs a worker on nc, logging at debug level, until done says
// it has done what is asked (what, when it does not), and stops it.
func serveUntil(t *testing.T, nc *nats.Conn, what string, done func(*Worker) bool) (*Worker, *syncbuf.Buffer) {
	t.Helper()
	w, logs, stop := runWorkerAt(t, nc, slog.LevelDebug)
	poll(t, logs, what, func() bool { return done(w) })
	stop()
	return w, logs
}

// poll waits up to 15 s for done, and fails the test with what and the
// worker's logs if it does not come.
func poll(t *testing.T, logs *syncbuf.Buffer, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !done(); time.Sleep(5 * time.Millisecond) { // polling interval
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen\n%s", what, logs.String())
		}
	}
}

// failedPublishes is w's count of gradients not stored since one was.
func failedPublishes(w *Worker) int {
	w.pubFails.mu.Lock()
	defer w.pubFails.mu.Unlock()
	return w.pubFails.streak
}

// publish stores m on subject in JetStream.
func publish(t *testing.T, js jetstream.JetStream, subject string, m interface{ MarshalBinary() ([]byte, error) }) {
	t.Helper()
	b, _ := m.MarshalBinary()
	if _, err := js.Publish(context.Background(), subject, b); err != nil {
		t.Fatal(err)
	}
}

// putSnapshot stores p as its run's snapshot, as a coordinator does.
func putSnapshot(t *testing.T, js jetstream.JetStream, p *protocol.Params) {
	t.Helper()
	obs, err := js.ObjectStore(context.Background(), protocol.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.PutSnapshot(context.Background(), obs, p, js.Conn().MaxPayload()); err != nil {
		t.Fatal(err)
	}
}

// runWorker starts a worker logging into the returned buffer; stop ends it
// and fails the test if Run returned an error.
func runWorker(t *testing.T, nc *nats.Conn) (w *Worker, logs *syncbuf.Buffer, stop func()) {
	t.Helper()
	return runWorkerAt(t, nc, slog.LevelInfo)
}

// runWorkerAt is runWorker logging from level on.
func runWorkerAt(t *testing.T, nc *nats.Conn, level slog.Level) (w *Worker, logs *syncbuf.Buffer, stop func()) {
	t.Helper()
	return runWorkerWith(t, nc, level, Options{})
}

// runWorkerWith is runWorkerAt with opts (their Log set to the buffer's).
func runWorkerWith(t *testing.T, nc *nats.Conn, level slog.Level, opts Options) (w *Worker, logs *syncbuf.Buffer, stop func()) {
	t.Helper()
	logs = new(syncbuf.Buffer)
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))
	w, err := New(nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return w, logs, func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestTaskBehindTheSnapshotIsDroppedUnread: a task of a step before the
// run's snapshot (left over from long ago, its commit record trimmed) is
// stale, which the snapshot's step in its metadata shows without reading
// it. Here the snapshot's body is not even a snapshot: the task must be
// dropped all the same, once, not handed back because the body is
// unreadable.
func TestTaskBehindTheSnapshotIsDroppedUnread(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	cfg, _, _ := registerRun(t, js)
	run := cfg.Signature()
	obs, err := js.ObjectStore(ctx, protocol.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: protocol.StateObject(run), Metadata: map[string]string{"step": "5"}},
		strings.NewReader("not a snapshot")); err != nil {
		t.Fatal(err)
	}
	publishStep0(t, js, run)

	_, logs, stop := runWorker(t, nc)
	defer stop()
	cons, _ := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	poll(t, logs, "both tasks dropped", func() bool {
		// Delivered too: the consumer may not count the tasks pending yet.
		info, err := cons.Info(ctx)
		return err == nil && info.Delivered.Consumer >= 2 && info.NumPending == 0 && info.NumAckPending == 0
	})
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 2 {
		t.Fatalf("%d deliveries of 2 tasks: a task was handed back\n%s", info.Delivered.Consumer, logs.String())
	}
	grads, _ := js.Stream(ctx, protocol.GradsStream)
	if gi, _ := grads.Info(ctx); gi.State.Msgs != 0 {
		t.Fatalf("%d gradients published for stale tasks", gi.State.Msgs)
	}
}

// TestSnapshotFailingItsCheckIsNotUsed hands the worker a snapshot whose
// weights do not match their check: no gradient is computed on them, the
// task goes back for redelivery, and the worker says why.
func TestSnapshotFailingItsCheckIsNotUsed(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	cfg, ds, net := registerRun(t, js)
	run := cfg.Signature()
	p, _ := firstSnapshot(t, cfg, ds, net)
	p.Weights[3] += 1 // the bytes no longer match the check
	putSnapshot(t, js, &p)
	publish(t, js, protocol.TasksSubject(run), &protocol.Task{Run: run, Step: 0, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}})

	w, logs, stop := runWorker(t, nc)
	cons, _ := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	deadline := time.Now().Add(15 * time.Second)
	for {
		info, err := cons.Info(ctx)
		// Delivered at least twice: refused once and handed out again.
		if err == nil && info.Delivered.Consumer >= 2 && strings.Count(logs.String(), "weights check mismatch") >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task not redelivered after a check mismatch: %+v\n%s", info, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	stop()
	grads, _ := js.Stream(ctx, protocol.GradsStream)
	if info, _ := grads.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("%d gradients published on a snapshot that failed its check", info.State.Msgs)
	}
	if w.Tasks() != 0 {
		t.Fatalf("worker counts %d tasks done", w.Tasks())
	}
}

// TestIdleIsTheWaitForATask: a worker whose consumer is waiting for work
// counts that wait as idle time once a task comes: at least the time from
// when its pull was seen waiting to when the task was published, and no
// more than it has been running.
func TestIdleIsTheWaitForATask(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	start := time.Now()
	w, logs, stop := runWorker(t, nc)
	cons, _ := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	deadline := time.Now().Add(10 * time.Second)
	for { // the worker's pull is waiting at the server: it is idle
		info, err := cons.Info(ctx)
		if err == nil && info.NumWaiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never waited for a task: %+v\n%s", info, logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	if w.Idle() != 0 {
		t.Fatalf("idle %v before any task came", w.Idle())
	}
	waiting := time.Now()
	time.Sleep(20 * time.Millisecond) // the idle time to measure, not a wait for an event
	waited := time.Since(waiting)
	if _, err := js.Publish(ctx, protocol.TasksSubject("abc"), []byte("not a task")); err != nil {
		t.Fatal(err)
	}
	for w.Idle() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the task came and no idle time was counted\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	stop()
	if idle, ran := w.Idle(), time.Since(start); idle < waited || idle > ran {
		t.Fatalf("idle %v: it waited at least %v, in a run of %v", idle, waited, ran)
	}
}

// TestALoneWorkerSendsTheShardsOfAStepTogether: a worker that hears no
// other one holds the shards of a step it computed, rather than send them
// after a millisecond without the next task, and sends the step as one
// gradient once the next task comes: here once the worker has waited for
// it 20 ms, as when a busy machine is slow to hand over a task. The first
// shard of step 1 comes with step 0, so that all the worker waits for
// after step 0 is the second (a worker that gave up on it would wait for a
// task without counting it idle until one came).
func TestALoneWorkerSendsTheShardsOfAStepTogether(t *testing.T) {
	defer func(d time.Duration) { aloneWait = d }(aloneWait)
	aloneWait = time.Minute
	js, run, w, logs := pastStep0(t, 0)
	waited := w.Idle()
	poll(t, logs, "20 ms waiting for shard 1 of step 1, holding shard 0", func() bool { return w.Idle() >= waited+20*time.Millisecond })
	publish(t, js, protocol.TasksSubject(run), stepOneTask(run, 1))
	poll(t, logs, "both tasks of step 1 done", func() bool { return w.Tasks() == 4 })
	if got := stepOneGradients(t, js, run); got != "0-1" {
		t.Fatalf("step 1 went as gradients of shards %s, want one of both\n%s", got, logs.String())
	}
}

// TestHeldShardsGoWhenTheNextShardsTaskFails: a lone worker holds shard 0
// of a step while the next task in hand is shard 1, to send both as one
// gradient; that task turns out not to fit the run and is rejected. Shard 0
// goes out at once, rather than wait, without keepalives, for whatever task
// comes next (none does here).
func TestHeldShardsGoWhenTheNextShardsTaskFails(t *testing.T) {
	defer func(d time.Duration) { aloneWait = d }(aloneWait)
	aloneWait = time.Minute
	js, run, _, logs := pastStep0(t)
	bad := stepOneTask(run, 1)
	bad.Indices = bad.Indices[:3] // the shard has 4 samples
	publish(t, js, protocol.TasksSubject(run), stepOneTask(run, 0))
	publish(t, js, protocol.TasksSubject(run), bad)
	poll(t, logs, "the rejection of shard 1's task", func() bool { return strings.Contains(logs.String(), "task does not fit its run") })
	grads, err := js.Stream(context.Background(), protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, logs, "the gradient of the held shard 0 of step 1", func() bool {
		_, err := grads.GetLastMsgForSubject(context.Background(), protocol.GradSubject(run, 1, 0))
		return err == nil
	})
	if got := stepOneGradients(t, js, run); got != "0" {
		t.Fatalf("step 1 went as gradients of shards %q, want shard 0's alone\n%s", got, logs.String())
	}
	// Held past its ack wait, shard 0's task would have come back, and
	// gone out only then.
	noRedelivery(t, js, logs)
}

// TestAWorkerHearingAnotherSendsItsShardsWithoutWaiting: a worker whose
// inbox hears another worker's gradients sends the first shard of a step
// when the next task is not in hand within a moment, as another worker
// may hold it.
func TestAWorkerHearingAnotherSendsItsShardsWithoutWaiting(t *testing.T) {
	defer func(d time.Duration) { aloneWait = d }(aloneWait)
	aloneWait = time.Minute
	js, run, w, logs := pastStep0(t)
	r := w.runs.runs[0] // the run's first task came before Tasks counted it
	if err := js.Conn().Publish(protocol.GradSubject(run, 1, 1), []byte("another worker's")); err != nil {
		t.Fatal(err)
	}
	poll(t, logs, "the inbox hearing another worker", func() bool { return !r.rep.inbox.alone(1) })
	publish(t, js, protocol.TasksSubject(run), stepOneTask(run, 0))
	grads, _ := js.Stream(context.Background(), protocol.GradsStream)
	poll(t, logs, "the gradient of shard 0 of step 1", func() bool {
		_, err := grads.GetLastMsgForSubject(context.Background(), protocol.GradSubject(run, 1, 0))
		return err == nil
	})
	publish(t, js, protocol.TasksSubject(run), stepOneTask(run, 1))
	poll(t, logs, "both tasks of step 1 done", func() bool { return w.Tasks() == 4 })
	if got := stepOneGradients(t, js, run); got != "0 1" {
		t.Fatalf("step 1 went as gradients of shards %s, want one of each\n%s", got, logs.String())
	}
	// Held past its ack wait, shard 0's task would have come back.
	noRedelivery(t, js, logs)
}

// noRedelivery checks that the workers' consumer delivered the 4 tasks of
// steps 0 and 1 once each: shard 0 of step 1 was not held until it came
// back.
func noRedelivery(t *testing.T, js jetstream.JetStream, logs *syncbuf.Buffer) {
	t.Helper()
	cons, err := js.Consumer(context.Background(), protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 4 {
		t.Fatalf("%d deliveries of the 4 tasks: shard 0 of step 1 was held until it came back\n%s", info.Delivered.Consumer, logs.String())
	}
}

// pastStep0 runs a worker, on a connection of its own made with NoEcho,
// through both shards of step 0 of a started run of two shards: the run,
// its dataset and its snapshot are loaded, and its inbox subscribed. The
// tasks of step 1's stepOneShards are published with step 0's.
func pastStep0(t *testing.T, stepOneShards ...uint16) (jetstream.JetStream, string, *Worker, *syncbuf.Buffer) {
	t.Helper()
	nc, js := startJetStream(t)
	run := startedRun(t, js).Run
	w, logs, stop := runWorker(t, connectNoEcho(t, nc.ConnectedUrl()))
	t.Cleanup(stop)
	publishStep0(t, js, run)
	for _, shard := range stepOneShards {
		publish(t, js, protocol.TasksSubject(run), stepOneTask(run, shard))
	}
	poll(t, logs, "both tasks of step 0 done", func() bool { return w.Tasks() >= 2 })
	return js, run, w, logs
}

// stepOneTask is shard's task of step 1 of run, of two shards of 4 samples.
func stepOneTask(run string, shard uint16) *protocol.Task {
	return &protocol.Task{Run: run, Step: 1, Shard: shard, Shards: 2, Indices: []int32{int32(8 + 4*shard), int32(9 + 4*shard), int32(10 + 4*shard), int32(11 + 4*shard)}}
}

// stepOneGradients lists the gradients of step 1 of run in the grads
// stream by the shards each covers: "0-1" for one of both, "0 1" for one
// of each.
func stepOneGradients(t *testing.T, js jetstream.JetStream, run string) string {
	t.Helper()
	ctx := context.Background()
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for shard := range 2 {
		raw, err := grads.GetLastMsgForSubject(ctx, protocol.GradSubject(run, 1, shard))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var g protocol.Grad
		if err := g.UnmarshalBinary(raw.Data); err != nil {
			continue // not a gradient (another worker's, as the test has it)
		}
		if g.Shards() == 1 {
			got = append(got, fmt.Sprint(g.Shard))
		} else {
			got = append(got, fmt.Sprintf("%d-%d", g.Shard, int(g.Shard)+g.Shards()-1))
		}
	}
	return strings.Join(got, " ")
}

// TestMalformedTaskIsTerminated publishes garbage and a task for a run that
// does not exist: the worker logs each once with its subject and sequence,
// terminates it so it is never redelivered, and keeps serving.
func TestMalformedTaskIsTerminated(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()

	_, logs, stop := runWorker(t, nc)

	if _, err := js.Publish(ctx, protocol.TasksSubject("abc"), []byte("not a task")); err != nil {
		t.Fatal(err)
	}
	orphan := protocol.Task{Run: "no-such-run", Step: 1, Shard: 0, Shards: 1, Indices: []int32{1}}
	b, _ := orphan.MarshalBinary()
	if _, err := js.Publish(ctx, protocol.TasksSubject(orphan.Run), b); err != nil {
		t.Fatal(err)
	}

	stream, _ := js.Stream(ctx, protocol.TasksStream)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err == nil && info.State.Msgs == 0 {
			break // both terminated: gone from the work queue
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks still queued: %+v\n%s", info.State, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	stop()
	out := logs.String()
	for _, want := range []string{"dropping malformed task on jt.tasks.abc (stream JT_TASKS seq 1)", "dropping task for an unusable run on jt.tasks.no-such-run (stream JT_TASKS seq 2)"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("want one log line with %q, got:\n%s", want, out)
		}
	}
}

// TestEarlierStepTasksBehindALaterOneAreServedFirst hands one worker the
// first task of step 1 ahead of both tasks of step 0 (as after a
// redelivery): waiting for step 0's gradients, it serves the step 0 tasks
// it holds — the one it took out of the consumer to look at too — sends
// them, and goes on, with no task handed back for redelivery.
func TestEarlierStepTasksBehindALaterOneAreServedFirst(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	run := startedRun(t, js).Run
	for _, task := range []protocol.Task{
		{Run: run, Step: 1, Shard: 0, Shards: 2, Indices: []int32{8, 9, 10, 11}},
		{Run: run, Step: 0, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}},
		{Run: run, Step: 0, Shard: 1, Shards: 2, Indices: []int32{4, 5, 6, 7}},
		{Run: run, Step: 1, Shard: 1, Shards: 2, Indices: []int32{12, 13, 14, 15}},
	} {
		publish(t, js, protocol.TasksSubject(run), &task)
	}

	w, logs, stop := runWorker(t, nc)
	for deadline := time.Now().Add(15 * time.Second); w.Tasks() < 4; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 tasks done\n%s", w.Tasks(), logs.String())
		}
	}
	stop()
	cons, _ := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 4 || w.Tasks() != 4 {
		t.Fatalf("%d deliveries and %d tasks done, want 4 of each: a task was handed back\n%s", info.Delivered.Consumer, w.Tasks(), logs.String())
	}
	grads, _ := js.Stream(ctx, protocol.GradsStream)
	for step := uint64(0); step < 2; step++ {
		raw, err := grads.GetLastMsgForSubject(ctx, protocol.GradSubject(run, step, 0))
		if err != nil {
			t.Fatalf("no gradient of step %d shard 0: %v", step, err)
		}
		var g protocol.Grad
		if err := g.UnmarshalBinary(raw.Data); err != nil || g.Shards() != 2 {
			t.Fatalf("step %d: %v, %d shards in one gradient, want both", step, err, g.Shards())
		}
	}
}

// TestAwaitedShardsBehindAFullHandAreFound hands one worker a task of step
// 1, then tasks of later steps, more than it keeps in hand, and only then
// both tasks of step 0 (as after a re-dispatch). Waiting for step 0's
// gradients, it must give back later tasks to reach those of step 0 and
// serve them within its wait, not hand back the step 1 task when its wait
// ends, one task every gatherWait.
func TestAwaitedShardsBehindAFullHandAreFound(t *testing.T) {
	nc, js := startJetStream(t)
	run := startedRun(t, js).Run
	task := func(step uint64, shard uint16) *protocol.Task {
		i := int32(4 * (2*step + uint64(shard)))
		return &protocol.Task{Run: run, Step: step, Shard: shard, Shards: 2, Indices: []int32{i, i + 1, i + 2, i + 3}}
	}
	tasks := []*protocol.Task{task(1, 0), task(1, 1)}
	for step := uint64(2); step <= 4; step++ {
		tasks = append(tasks, task(step, 0), task(step, 1))
	}
	tasks = append(tasks, task(0, 0), task(0, 1))
	for _, tk := range tasks {
		publish(t, js, protocol.TasksSubject(run), tk)
	}

	_, logs := serveUntil(t, nc, "every task done", func(w *Worker) bool { return w.Tasks() == uint64(len(tasks)) })
	if n := strings.Count(logs.String(), "handing a task back"); n > 0 {
		t.Fatalf("%d tasks handed back when their wait for the weights ended\n%s", n, logs.String())
	}
}

// TestSnapshotReplacedWhileReadIsReadAgain: the coordinator replaces a
// run's snapshot with every checkpoint, which deletes the chunks of the old
// one, also from under a worker reading it. The replica's read must go on
// with the new snapshot at once, not wait for the lost chunks until its
// bound (snapshotWait, 30 s).
func TestSnapshotReplacedWhileReadIsReadAgain(t *testing.T) {
	_, js := startJetStream(t)
	ctx := context.Background()
	p := startedRun(t, js)
	obs, _ := js.ObjectStore(ctx, protocol.StateBucket)
	info, err := obs.GetInfo(ctx, protocol.StateObject(p.Run))
	if err != nil {
		t.Fatal(err)
	}
	// The old snapshot's chunks vanish while its name still leads to it,
	// as between a replacement's purge and a reader's next chunk.
	stream, err := js.Stream(ctx, "OBJ_"+protocol.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject("$O."+protocol.StateBucket+".C."+info.NUID)); err != nil {
		t.Fatal(err)
	}
	// The run's replica, as a worker makes it.
	rp := runOf(t, js, p.Run).rep
	done := make(chan error, 1)
	go func() { done <- rp.start(ctx, obs, 7, false) }()
	// Once the read waits for chunks (its consumer is on the stream), the
	// coordinator writes the next snapshot.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) { // polling interval
		si, err := stream.Info(ctx)
		if err == nil && si.State.Consumers > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read never started")
		}
	}
	next := p
	next.Step = 7
	putSnapshot(t, js, &next)
	replaced := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second): // the client's own read bounds are 5 s and more
		t.Fatal("the read did not move to the new snapshot within 2 s")
	}
	if !rp.valid || rp.step != 7 || rp.check != next.Check || model.Check(rp.weights) != next.Check {
		t.Fatalf("replica at step %d (valid %v) %v after the replacement, want the new snapshot's, 7, and its weights", rp.step, rp.valid, time.Since(replaced))
	}
}

// TestUnstoredGradientsAreWarnedOfAtMostOnceAMinute: while the broker
// stores no gradient (here its grads stream is gone, so every publish times
// out), the worker hands the tasks back again and again, and warns of it
// once, not at every failure; when a gradient is stored again, it says so.
// (TestPublishFailuresWarnOnceAMinute has the minute.)
func TestUnstoredGradientsAreWarnedOfAtMostOnceAMinute(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	run := startedRun(t, js).Run
	w, logs, stop := runWorker(t, nc)
	defer stop()
	poll(t, logs, "the worker getting ready", func() bool { return strings.Contains(logs.String(), "worker ready") })
	if err := js.DeleteStream(ctx, protocol.GradsStream); err != nil {
		t.Fatal(err)
	}
	publishStep0(t, js, run)
	poll(t, logs, "four failed publishes", func() bool { return failedPublishes(w) >= 4 })
	if n := strings.Count(logs.String(), "publishing a gradient failed"); n != 1 {
		t.Fatalf("%d warnings for %d failed publishes, want 1\n%s", n, failedPublishes(w), logs.String())
	}

	if err := protocol.Ensure(ctx, js, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	poll(t, logs, "both tasks done", func() bool { return w.Tasks() >= 2 })
	poll(t, logs, "word that gradients are stored again", func() bool { return strings.Contains(logs.String(), "gradients are stored again") })
	// Publishes sent while the stream was gone may still time out now:
	// they do not warn again within the minute.
	if n := strings.Count(logs.String(), "publishing a gradient failed"); n != 1 {
		t.Fatalf("%d warnings in all, want 1\n%s", n, logs.String())
	}
}

// A gradient the broker refuses for want of room goes back for redelivery
// after retryStoreAfter, not at once: at once, the worker would compute it
// again and again while nothing can be stored (14,457 refused publishes in
// 2.5 s, with two tasks). Once there is room, the tasks are done.
func TestRefusedGradientsAreRetriedAfterADelay(t *testing.T) {
	nc, js, _ := fullStore(t)
	ctx := context.Background()
	w, logs, stop := runWorker(t, nc)
	defer stop()
	poll(t, logs, "a refused publish", func() bool { return failedPublishes(w) >= 1 })
	first := failedPublishes(w)
	time.Sleep(2500 * time.Millisecond) // the window to count failures in, not a wait for an event
	// Two tasks, retried once a second at most: a few more failures, not
	// one per computation.
	if n := failedPublishes(w) - first; n > 8 {
		t.Fatalf("%d refused publishes in 2.5 s after the first, want a few\n%s", n, logs.String())
	}
	if err := js.DeleteStream(ctx, "FILL"); err != nil {
		t.Fatal(err)
	}
	poll(t, logs, "both tasks done", func() bool { return w.Tasks() >= 2 })
}

// fullStore is a started run with the tasks of its step 0 out, on a server
// whose store has no room left for their gradients (a stream FILL holds
// it; deleting it makes room).
func fullStore(t *testing.T) (*nats.Conn, jetstream.JetStream, string) {
	t.Helper()
	nc, js := startJetStreamMaxStore(t, 4<<20)
	ctx := context.Background()
	run := startedRun(t, js).Run
	publishStep0(t, js, run)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILL", Subjects: []string{"fill"}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		_, err := js.Publish(ctx, "fill", make([]byte, 256<<10))
		if protocol.NoRoom(err) {
			return nc, js, run
		}
		if err != nil || i > 100 {
			t.Fatalf("filling a 4 MB store: %v after %d messages", err, i)
		}
	}
}

// TestRefusedGradientsAreReportedToTheCoordinators: a worker whose
// gradients the broker refuses for want of room says so on RefusalSubject,
// naming the run and the refusal, at most once a second.
func TestRefusedGradientsAreReportedToTheCoordinators(t *testing.T) {
	nc, _, run := fullStore(t)
	reports := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(protocol.RefusalSubject, reports)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	w, logs, stop := runWorker(t, nc)
	defer stop()
	var first protocol.Refusal
	select {
	case msg := <-reports:
		if err := first.UnmarshalBinary(msg.Data); err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no refusal reported\n%s", logs.String())
	}
	if first.Run != run || first.Worker != w.opts.ID || protocol.NoRoomError(first.Err()) == nil {
		t.Fatalf("reported %+v for run %s, worker %s", first, run, w.opts.ID)
	}
	time.Sleep(2500 * time.Millisecond) // the window to count reports in, not a wait for an event
	if n := len(reports); n > 3 {
		t.Fatalf("%d more reports in 2.5 s, want one a second at most", n)
	}
}

// TestPublishFailuresWarnOnceAMinute: the first failure warns; the next
// ones within publishWarnEvery of the warning do not, a stored gradient or
// not in between; the first one past it warns with the count of those it
// did not.
func TestPublishFailuresWarnOnceAMinute(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var p publishFailures
	type want struct {
		warn       bool
		unreported int
	}
	check := func(at time.Duration, w want) {
		t.Helper()
		if warn, n := p.failed(t0.Add(at)); warn != w.warn || n != w.unreported {
			t.Fatalf("failure at %v: warn %v with %d unreported, want %v with %d", at, warn, n, w.warn, w.unreported)
		}
	}
	check(0, want{true, 0})
	check(time.Second, want{false, 0})
	check(2*time.Second, want{false, 0})
	if n := p.stored(); n != 3 {
		t.Fatalf("stored after 3 failures: %d", n)
	}
	if n := p.stored(); n != 0 {
		t.Fatalf("stored again: %d, want 0", n)
	}
	check(30*time.Second, want{false, 0}) // a new streak, within the minute
	check(61*time.Second, want{true, 3})
	check(62*time.Second, want{false, 0})
}
