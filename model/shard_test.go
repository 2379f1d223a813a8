package model

import (
	"sync"
	"testing"
)

// shardSum adds shard gradients in shard order into a float32 sum and scales it by
// 1/count, the coordinator's combination rule.
func shardSum(grads [][]float32, count int) []float32 {
	sum := make([]float32, len(grads[0]))
	for _, g := range grads {
		for i, v := range g {
			sum[i] += v
		}
	}
	inv := 1 / float32(count)
	for i := range sum {
		sum[i] *= inv
	}
	return sum
}

// TestShardSumIndependentOfSchedule: the mean gradient of a batch of 30 split into 4 shards
// (8, 8, 7, 7) is the same bytes whichever goroutine (each with its own Network) computed
// which shard, in whatever order, and equals the sequential computation.
func TestShardSumIndependentOfSchedule(t *testing.T) {
	const batch, shards = 30, 4
	input := [3]int{1, 28, 28}
	spec := Spec{Kind: KindMLP}
	ref, err := New(spec, input, 10)
	if err != nil {
		t.Fatal(err)
	}
	params := ref.Init(3)
	x, y := randomBatch(4, batch, input, 10)
	ss := 28 * 28
	shardGrad := func(net *Network, s int) []float32 {
		lo, hi := ShardRange(batch, shards, s)
		g := make([]float32, len(params))
		if _, err := net.Gradient(params, x[lo*ss:hi*ss], y[lo:hi], g); err != nil {
			t.Error(err)
		}
		return g
	}
	seq := make([][]float32, shards)
	for s := range seq {
		seq[s] = shardGrad(ref, s)
	}
	want := Digest(shardSum(seq, batch))

	schedules := [][][]int{ // per worker, the shards it computes, in order
		{{3, 2, 1, 0}},
		{{0, 2}, {3, 1}},
		{{1}, {0}, {3}, {2}},
		{{2, 0, 1}, {3}},
	}
	for i, sched := range schedules {
		grads := make([][]float32, shards)
		var wg sync.WaitGroup
		for _, mine := range sched {
			wg.Add(1)
			go func() {
				defer wg.Done()
				net, err := New(spec, input, 10)
				if err != nil {
					t.Error(err)
					return
				}
				defer net.Close()
				for _, s := range mine {
					grads[s] = shardGrad(net, s)
				}
			}()
		}
		wg.Wait()
		if got := Digest(shardSum(grads, batch)); got != want {
			t.Errorf("schedule %d %v: mean gradient differs", i, sched)
		}
	}
}

// TestTrainSynthetic: a short sharded run is deterministic and learns.
func TestTrainSynthetic(t *testing.T) {
	ds := Synthetic(1, 1024, 256)
	cfg := TrainConfig{Spec: Spec{Kind: KindMLP, Hidden: []int{32}}, Optimizer: DefaultOptimizer(OptAdam),
		Batch: 64, Shards: 4, Epochs: 2, Seed: 5}
	var last EpochReport
	w1, err := TrainSingleProcess(t.Context(), ds, cfg, func(r EpochReport) { last = r })
	if err != nil {
		t.Fatal(err)
	}
	w2, err := TrainSingleProcess(t.Context(), ds, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if Digest(w1) != Digest(w2) {
		t.Error("training not deterministic")
	}
	if last.Epoch != 1 || last.Step != 32 || last.TestAcc < 0.9 {
		t.Errorf("after 2 epochs: %+v", last)
	}
}
