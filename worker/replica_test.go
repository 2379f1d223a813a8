package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// TestReplicaStepsWithAPeersGradient starts a worker from a snapshot at
// step 0 and hands it shard 0 of step 1, and shard 0 of step 0 too unless
// another worker sent the whole step as one gradient; otherwise the other
// worker sends shard 1 alone. To compute on version 1 the worker must step
// its replica itself, from its own gradient and the peer's: the gradient it
// publishes for step 1 has to be the one computed here on the weights the
// coordinator's sum and optimizer produce, bit for bit, and name their
// check.
func TestReplicaStepsWithAPeersGradient(t *testing.T) {
	t.Run("one shard", func(t *testing.T) { testReplicaSteps(t, false) })
	t.Run("whole step in one gradient", func(t *testing.T) { testReplicaSteps(t, true) })
}

func testReplicaSteps(t *testing.T, wholeStep bool) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	cfg, ds, net := registerRun(t, js)
	run := cfg.Signature()
	snap, opt := firstSnapshot(t, cfg, ds, net)
	w0 := snap.Weights
	putSnapshot(t, js, &snap)

	grad := func(w []float32, indices []int32) ([]float32, model.Stats) {
		x := make([]float32, len(indices)*ds.SampleSize())
		y := make([]uint8, len(indices))
		ds.Train.Gather(indices, x, y)
		g := make([]float32, len(w))
		st, err := net.Gradient(w, x, y, g)
		if err != nil {
			t.Fatal(err)
		}
		return g, st
	}
	step0 := [][]int32{{0, 1, 2, 3}, {4, 5, 6, 7}}
	step1 := []int32{8, 9, 10, 11}

	stats := func(st model.Stats) protocol.ShardStats {
		return protocol.ShardStats{LossSum: st.LossSum, Correct: uint32(st.Correct), Count: uint32(st.Count)}
	}
	own, st0 := grad(w0, step0[0])
	peer, st1 := grad(w0, step0[1])
	sum := model.NewShardSum(2, len(w0))
	sum.Add(0, own)
	sum.Add(1, peer)
	pg := protocol.Grad{Run: run, Step: 0, Shard: 1, Worker: "peer", Weights: snap.Check,
		Stats: []protocol.ShardStats{stats(st1)}, Grad: peer}
	tasks := []protocol.Task{
		{Run: run, Step: 0, Shard: 0, Shards: 2, Indices: step0[0]},
		{Run: run, Step: 1, Shard: 0, Shards: 2, Indices: step1},
	}
	if wholeStep {
		pg.Shard, pg.Stats, pg.Grad = 0, []protocol.ShardStats{stats(st0), stats(st1)}, append([]float32(nil), sum.Sum()...)
		tasks = tasks[1:]
	}
	publish(t, js, protocol.GradSubject(run, 0, int(pg.Shard)), &pg)
	for _, task := range tasks {
		publish(t, js, protocol.TasksSubject(run), &task)
	}

	// What the coordinator computes: version 1 from both shards of step 0.
	w1 := append([]float32(nil), w0...)
	sum.Apply(opt, w1, 8, 0)
	want, _ := grad(w1, step1)

	w, logs, stop := runWorker(t, nc)
	defer stop()
	grads, _ := js.Stream(ctx, protocol.GradsStream)
	deadline := time.Now().Add(15 * time.Second)
	var got *jetstream.RawStreamMsg
	var err error
	for got == nil {
		got, err = grads.GetLastMsgForSubject(ctx, protocol.GradSubject(run, 1, 0))
		if time.Now().After(deadline) {
			t.Fatalf("no gradient of step 1 published (%d tasks done): %v\n%s", w.Tasks(), err, logs.String())
		}
		if got == nil {
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	var g protocol.Grad
	if err := g.UnmarshalBinary(got.Data); err != nil {
		t.Fatal(err)
	}
	if g.Weights != model.Check(w1) {
		t.Fatalf("step 1 gradient names weights %x, want %x", g.Weights, model.Check(w1))
	}
	sameBits(t, "step 1 gradient", g.Grad, want)
}

// A replica at the run's live edge waits for a peer's gradient to arrive
// by subscription instead of looking it up in the grads stream at once,
// which costs the broker a search of the stream (and, when the peer has
// just published, a second copy of the gradient) on every step.
func TestReplicaAtTheLiveEdgeWaitsForItsInbox(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	const run, size = "ab12", 6
	rp := stepFiveReplica(t, run, size)
	in := rp.inbox
	if err := in.subscribe(nc); err != nil {
		t.Fatal(err)
	}
	defer in.close()
	peer := func(step uint64, shard uint16) {
		g := protocol.Grad{Run: run, Step: step, Shard: shard, Worker: "peer", Weights: rp.check,
			Stats: []protocol.ShardStats{{Count: 4}}, Grad: []float32{1, 2, 3, 4, 5, 6}}
		publish(t, js, protocol.GradSubject(run, step, int(shard)), &g)
	}
	peer(4, 0) // the step before, received while listening
	poll(t, &syncbuf.Buffer{}, "the gradient of step 4", func() bool { return in.covers(5) })

	rp.add(0, model.Parts{{6, 5, 4, 3, 2, 1}})
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	counted := &lookupCounter{Stream: grads}
	published := false
	idle := func(uint64, time.Duration) {
		if !published { // the peer finishes while this replica waits
			peer(5, 1)
			published = true
			// Until it has arrived: the replica would look in the
			// stream after its 50 ms wait, however slow the delivery.
			poll(t, &syncbuf.Buffer{}, "the peer's gradient by subscription", func() bool {
				g, _ := in.take(5, 1)
				return g != nil
			})
		}
	}
	if err := rp.advance(ctx, counted, idle); err != nil {
		t.Fatal(err)
	}
	if rp.step != 6 {
		t.Fatalf("replica at step %d, want 6", rp.step)
	}
	if n := counted.lookups.Load(); n != 0 {
		t.Fatalf("looked in the grads stream %d times for a gradient its inbox received", n)
	}
}

// lookupCounter counts the messages looked up in a stream.
type lookupCounter struct {
	jetstream.Stream
	lookups atomic.Int32
}

func (s *lookupCounter) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	s.lookups.Add(1)
	return s.Stream.GetMsg(ctx, seq, opts...)
}

// A replica that looks a peer's gradient up in the grads stream finds it
// there in parts, when it was too large for one message, and steps with it.
func TestReplicaFetchesAGradientInParts(t *testing.T) {
	_, js := startJetStream(t)
	ctx := context.Background()
	const run, size = "ab12", 300
	rp := stepFiveReplica(t, run, size) // its inbox not subscribed: the stream is all it has
	g := peerGrad(run, 5, rp.check, size)
	own := make([]float32, size)
	for i := range own {
		own[i] = 1
	}
	parts := inParts(t, &g, 500, 2)
	publishAll(t, js, protocol.GradSubject(run, 5, 1), parts)
	// What the coordinator computes from both shards.
	want := make([]float32, size)
	sum := model.NewShardSum(2, size)
	sum.Add(0, own)
	sum.Add(1, g.Grad)
	sum.Apply(newTestOptimizer(t, size), want, 8, 5)

	rp.add(0, model.Parts{own})
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.advance(ctx, grads, nil); err != nil {
		t.Fatalf("stepping with a gradient in %d parts: %v", len(parts), err)
	}
	sameBits(t, "weights", rp.weights, want)
}

// A replica polling the grads stream for a gradient whose parts are still
// being published reads on from where its last poll stopped: the parts it
// found stay found, and are not fetched again.
func TestReplicaPollingForPartsReadsOn(t *testing.T) {
	_, js := startJetStream(t)
	ctx := context.Background()
	const run, size = "ab12", 300
	rp := stepFiveReplica(t, run, size)
	g := peerGrad(run, 5, rp.check, size)
	parts := inParts(t, &g, 400, 4)
	subject := protocol.GradSubject(run, 5, 1)
	stream, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	grads := &countingStream{Stream: stream}
	half := len(parts) / 2
	publishAll(t, js, subject, parts[:half])
	if ok, err := rp.fetch(ctx, grads, 1, rp.check); ok || err != nil {
		t.Fatalf("with %d of %d parts stored: found %v, %v", half, len(parts), ok, err)
	}
	publishAll(t, js, subject, parts[half:])
	grads.gets = 0
	if ok, err := rp.fetch(ctx, grads, 1, rp.check); !ok || err != nil {
		t.Fatalf("with every part stored: found %v, %v", ok, err)
	}
	if want := len(parts) - half; grads.gets != want {
		t.Errorf("the second poll read %d messages, want the %d parts stored since the first", grads.gets, want)
	}
	sameBits(t, "the gradient put together", rp.fetched.Grad, g.Grad)
}

// A replica that gave up waiting for a step's gradients reads the grads
// stream from its start at the next try: a stream deleted and created
// again (or restored) numbers its messages anew, below where the replica
// had read to.
func TestReplicaReadsARecreatedStreamAfresh(t *testing.T) {
	_, js := startJetStream(t)
	ctx := context.Background()
	const run, size = "ab12", 6
	rp := stepFiveReplica(t, run, size)
	peer := func(weights [8]byte) {
		t.Helper()
		g := protocol.Grad{Run: run, Step: 5, Shard: 1, Worker: "peer", Weights: weights, Stats: []protocol.ShardStats{{Count: 4}}, Grad: make([]float32, size)}
		publish(t, js, protocol.GradSubject(run, 5, 1), &g)
	}
	peer([8]byte{1}) // computed on other weights: read, and passed over
	rp.add(0, model.Parts{make([]float32, size)})
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := rp.advance(ctx, grads, nil); !errors.Is(err, errNotYet) {
		t.Fatalf("with no usable gradient of shard 1: %v, want errNotYet", err)
	}
	if err := js.DeleteStream(ctx, protocol.GradsStream); err != nil {
		t.Fatal(err)
	}
	if err := protocol.Ensure(ctx, js, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	peer(rp.check) // stored at sequence 1 of the new stream
	if grads, err = js.Stream(ctx, protocol.GradsStream); err != nil {
		t.Fatal(err)
	}
	if err := rp.advance(ctx, grads, nil); err != nil {
		t.Fatalf("the gradient stored anew at sequence 1 was not found: %v", err)
	}
	if rp.step != 6 {
		t.Fatalf("replica at step %d, want 6", rp.step)
	}
}

// countingStream is a real stream that counts the messages got from it.
type countingStream struct {
	jetstream.Stream
	gets int
}

func (s *countingStream) GetMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	m, err := s.Stream.GetMsg(ctx, seq, opts...)
	if err == nil {
		s.gets++
	}
	return m, err
}

// stepFiveReplica is a valid replica of run at step 5, of 2 shards of 4
// samples and size zero weights, with the default optimizer and an inbox
// that is not subscribed yet.
func stepFiveReplica(t *testing.T, run string, size int) *replica {
	t.Helper()
	in := newInbox(run, 2, size)
	rp := &replica{run: run, size: size, shards: 2, count: 8, opt: newTestOptimizer(t, size), sum: model.NewShardSum(2, size), inbox: in,
		valid: true, step: 5, weights: make([]float32, size)}
	rp.check = model.Check(rp.weights)
	in.moveTo(rp.step)
	return rp
}

// newTestOptimizer is the default config's optimizer for size weights.
func newTestOptimizer(t *testing.T, size int) model.Optimizer {
	t.Helper()
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := cfg.NewOptimizer(100, size)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// Shards computed on a step the replica has left (their publish came back
// failed, and the replica moved on with other workers' gradients) are not
// summed into the wrong step: their tasks go back for redelivery, with a
// warning — at debug level while publishes fail, when redelivered tasks
// come back in any order as a matter of course.
func TestShardsOfAStepTheReplicaLeftGoBack(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprintf("publishes failing %v", failing), func(t *testing.T) {
			_, js := startJetStream(t)
			ctx := context.Background()
			const sig, size = "ab12", 6
			task := protocol.Task{Run: sig, Step: 5, Shard: 0, Shards: 2, Indices: []int32{0, 1, 2, 3}}
			publish(t, js, protocol.TasksSubject(sig), &task)
			cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
			if err != nil {
				t.Fatal(err)
			}
			fetchTask := func() jetstream.Msg {
				t.Helper()
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				for msg := range batch.Messages() {
					return msg
				}
				t.Fatal("no task delivered")
				return nil
			}
			msg := fetchTask()

			logs := new(syncbuf.Buffer)
			w := &Worker{opts: Options{ID: "w", Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, held: newHoldings()}
			if failing {
				w.pubFails.failed(time.Now())
			}
			rp := stepFiveReplica(t, sig, size)
			rp.add(0, model.Parts{{1, 2, 3, 4, 5, 6}})
			w.pending = []pendingShard{{held: heldTask{ctx: ctx, msg: msg, task: task, start: time.Now()}, stats: protocol.ShardStats{Count: 4}}}
			w.pendingRun = &run{rep: rp}
			rp.step++ // it moved on
			w.flush()

			want := "level=WARN"
			if failing {
				want = "level=DEBUG"
			}
			if line := logs.String(); !strings.Contains(line, want) || !strings.Contains(line, "the replica moved on before its shards were sent") {
				t.Fatalf("logged %q, want the moved-on line at %s", line, want)
			}
			again := fetchTask()
			if md, err := again.Metadata(); err != nil || md.NumDelivered != 2 {
				t.Fatalf("the task was not handed back: delivered %d times (%v)", md.NumDelivered, err)
			}
		})
	}
}

// A replica one step behind the task it serves, missing a peer's shard of
// its step that its inbox did not hear (it was not listening, or lost
// messages), starts from the run's snapshot when the snapshot is at the
// task's step: that step's checkpoint may have trimmed the missing
// gradient from the grads stream, and the replica would wait for it and
// then compute it itself. With its step's shards all at hand it steps on
// as before, without looking the snapshot up.
func TestReplicaOneStepBehindStartsFromASnapshotAtTheTasksStep(t *testing.T) {
	_, js := startJetStream(t)
	ctx := context.Background()
	const run, size = "ab12", 6
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	state, err := js.ObjectStore(ctx, protocol.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	counted := &infoCounter{ObjectStore: state}
	s := streams{grads: grads, state: counted}
	waited := 0
	idle := func(uint64, time.Duration) { waited++ }

	// Its step's shards at hand: it steps on by itself.
	rp := stepFiveReplica(t, run, size)
	rp.add(0, model.Parts{{6, 5, 4, 3, 2, 1}})
	rp.add(1, model.Parts{{1, 2, 3, 4, 5, 6}})
	if err := rp.reach(ctx, s, 6, idle); err != nil || rp.step != 6 {
		t.Fatalf("with its shards at hand: at step %d (%v), want 6", rp.step, err)
	}
	if n := counted.infos.Load(); n != 0 || waited != 0 {
		t.Fatalf("with its shards at hand it looked the snapshot up %d times and waited %d times", n, waited)
	}

	// A peer's shard missing, and the snapshot at the task's step.
	w6 := []float32{0.5, -0.25, 1, 2, -3, 4}
	opt := newTestOptimizer(t, size)
	putSnapshot(t, js, &protocol.Params{Run: run, Step: 6, Check: model.Check(w6), Weights: w6, OptState: opt.MarshalState()})
	rp = stepFiveReplica(t, run, size)
	rp.add(0, model.Parts{{6, 5, 4, 3, 2, 1}})
	if err := rp.reach(ctx, s, 6, idle); err != nil {
		t.Fatal(err)
	}
	if rp.step != 6 || rp.check != model.Check(w6) {
		t.Fatalf("at step %d with check %x, want the snapshot's step 6 and check %x", rp.step, rp.check, model.Check(w6))
	}
	if waited != 0 {
		t.Fatalf("waited %d times for a shard the snapshot makes unnecessary", waited)
	}
}

// infoCounter counts the object infos looked up in an object store.
type infoCounter struct {
	jetstream.ObjectStore
	infos atomic.Int32
}

func (s *infoCounter) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	s.infos.Add(1)
	return s.ObjectStore.GetInfo(ctx, name, opts...)
}
