package worker

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	for i := range want {
		if math.Float32bits(g.Grad[i]) != math.Float32bits(want[i]) {
			t.Fatalf("step 1 gradient[%d] = %v, want %v", i, g.Grad[i], want[i])
		}
	}
}
