package worker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// coordinatorTask is the task of (step, shard) of cfg's run as a
// coordinator makes it: the shard's part of the step's batch in the epoch's
// sample order.
func coordinatorTask(cfg config.Config, n int, step uint64, shard int) *protocol.Task {
	spe := uint64(model.StepsPerEpoch(n, cfg.BatchSize))
	epoch := int(step / spe)
	perm := model.Permutation(cfg.Seed, epoch, n)
	return &protocol.Task{Run: cfg.Signature(), Step: step, Epoch: uint32(epoch), Shard: uint16(shard), Shards: uint16(cfg.Shards),
		Indices: slices.Clone(model.ShardIndices(perm, int(step%spe), cfg.BatchSize, cfg.Shards, shard))}
}

// TestShardsNobodyServesAreComputedHere: the task of step 0's shard 1 never
// comes (its worker died holding it, or a broker restart left it pending
// until the ack wait). A worker serving step 1 waits for that shard, then
// computes it itself from the task it makes, and the gradient it publishes
// is the shard's.
func TestShardsNobodyServesAreComputedHere(t *testing.T) {
	nc, js := startJetStream(t)
	cfg, ds, net := registerRun(t, js)
	p, _ := firstSnapshot(t, cfg, ds, net)
	putSnapshot(t, js, &p)
	run := cfg.Signature()
	for _, tk := range []*protocol.Task{coordinatorTask(cfg, ds.Train.N, 0, 0), coordinatorTask(cfg, ds.Train.N, 1, 0), coordinatorTask(cfg, ds.Train.N, 1, 1)} {
		publish(t, js, protocol.TasksSubject(run), tk)
	}

	w, logs := serveUntil(t, nc, "the three tasks done", func(w *Worker) bool { return w.Tasks() == 3 })
	if !strings.Contains(logs.String(), "computed shards no task brought") {
		t.Fatalf("step 0's shard 1 was not computed here\n%s", logs.String())
	}

	grads, _ := js.Stream(context.Background(), protocol.GradsStream)
	raw, err := grads.GetLastMsgForSubject(context.Background(), protocol.GradSubject(run, 0, 1))
	if err != nil {
		t.Fatalf("no gradient of step 0 shard 1: %v", err)
	}
	var g protocol.Grad
	if err := g.UnmarshalBinary(raw.Data); err != nil {
		t.Fatal(err)
	}
	// The shard's gradient, as the worker holding its task would have
	// computed it.
	want := coordinatorTask(cfg, ds.Train.N, 0, 1)
	x, y := make([]float32, len(want.Indices)*ds.SampleSize()), make([]uint8, len(want.Indices))
	ds.Train.Gather(want.Indices, x, y)
	grad := make([]float32, len(p.Weights))
	if _, err := net.Gradient(p.Weights, x, y, grad); err != nil {
		t.Fatal(err)
	}
	if g.Worker != w.opts.ID || g.Shards() != 1 || g.Weights != p.Check || !slices.Equal(g.Grad, grad) {
		t.Fatalf("gradient of step 0 shard 1 from %q (want %q), %d shards, weights %x (want %x), same values: %v",
			g.Worker, w.opts.ID, g.Shards(), g.Weights, p.Check, slices.Equal(g.Grad, grad))
	}
}

// TestTasksMadeOtherwiseTurnSelfServingOff: a worker trusts the tasks it
// makes only once a task received matched, and never after one did not.
func TestTasksMadeOtherwiseTurnSelfServingOff(t *testing.T) {
	_, js := startJetStream(t)
	cfg, ds, _ := registerRun(t, js)
	r := runOf(t, js, cfg.Signature())
	if r.der.verified {
		t.Fatal("trusted before any task came")
	}
	r.note(coordinatorTask(cfg, ds.Train.N, 3, 1))
	if !r.der.verified {
		t.Fatal("a task as the coordinator makes it was not trusted")
	}
	if got := r.task(3, 1); !slices.Equal(got.Indices, coordinatorTask(cfg, ds.Train.N, 3, 1).Indices) {
		t.Fatalf("made %v", got.Indices)
	}
	other := coordinatorTask(cfg, ds.Train.N, 4, 0)
	other.Indices[0], other.Indices[1] = other.Indices[1], other.Indices[0]
	r.note(other)
	r.note(coordinatorTask(cfg, ds.Train.N, 5, 0))
	if r.der.verified || !r.der.refused {
		t.Fatal("still trusted after a task made otherwise")
	}
}

// TestSelfServingWaitsForSlowShards: a worker whose shards take long waits
// four of them before computing another worker's, not half a second.
func TestSelfServingWaitsForSlowShards(t *testing.T) {
	r := &run{}
	if got := r.selfServeAfter(); got != 500*time.Millisecond {
		t.Fatalf("fast shards: %v", got)
	}
	r.shardTime = 300 * time.Millisecond
	if got := r.selfServeAfter(); got != 1200*time.Millisecond {
		t.Fatalf("shards of 300 ms: %v", got)
	}
}

// TestTasksOfTwoEpochsAreMade: tasks of two epochs meet at an epoch's end
// (the coordinator hands out the next epoch's before it evaluates); the
// tasks made for either are the coordinator's.
func TestTasksOfTwoEpochsAreMade(t *testing.T) {
	_, js := startJetStream(t)
	cfg, ds, _ := registerRun(t, js)
	r := runOf(t, js, cfg.Signature())
	spe := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize))
	for _, step := range []uint64{spe - 1, spe, spe - 1, 2*spe + 3, spe, spe - 2} {
		for shard := range cfg.Shards {
			want := coordinatorTask(cfg, ds.Train.N, step, shard)
			if got := r.task(step, shard); got.Epoch != want.Epoch || !slices.Equal(got.Indices, want.Indices) {
				t.Fatalf("step %d shard %d: made epoch %d %v, the coordinator's epoch %d %v", step, shard, got.Epoch, got.Indices, want.Epoch, want.Indices)
			}
		}
	}
}
