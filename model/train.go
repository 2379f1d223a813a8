package model

import (
	"context"
	"fmt"
	"time"
)

// TrainConfig is a single-process training run.
type TrainConfig struct {
	Spec      Spec
	Optimizer OptimizerSpec // TotalSteps 0 is filled in as epochs × steps per epoch
	Batch     int           // global batch size
	Shards    int           // shards per step (0 or 1: one shard); the math matches the coordinator's
	Epochs    int
	Seed      uint64
}

// EpochReport is the outcome of one finished epoch.
type EpochReport struct {
	Epoch         int // 0-based
	Step          int64
	TrainLoss     float64 // mean over the epoch's training samples, at the weights each step saw
	TrainAcc      float64
	TestLoss      float64
	TestAcc       float64
	Duration      time.Duration // training time of the epoch (evaluation excluded)
	SamplesPerSec float64       // training samples per second
}

// TrainSingleProcess trains a network on ds in this goroutine with exactly the arithmetic of
// the distributed trainer: weights from Init(Seed); each step takes BatchIndices of the
// epoch's Permutation, splits them with ShardRange, computes each shard's summed gradient,
// adds the shard gradients in shard order into a float32 sum, multiplies by 1/float32(count)
// and applies the optimizer. report (if not nil) is called after every epoch. It returns the
// final weights, or ctx's error if ctx ends first.
func TrainSingleProcess(ctx context.Context, ds *Dataset, cfg TrainConfig, report func(EpochReport)) ([]float32, error) {
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	spe := StepsPerEpoch(ds.Train.N, cfg.Batch)
	if spe == 0 || cfg.Shards > cfg.Batch || cfg.Epochs < 0 {
		return nil, fmt.Errorf("%w: batch %d, shards %d, epochs %d for %d training samples", ErrSpec, cfg.Batch, cfg.Shards, cfg.Epochs, ds.Train.N)
	}
	net, err := New(cfg.Spec, ds.Shape, ds.Classes)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	if cfg.Optimizer.TotalSteps == 0 {
		cfg.Optimizer.TotalSteps = spe * cfg.Epochs
	}
	opt, err := NewOptimizer(cfg.Optimizer, net.Layout().Size())
	if err != nil {
		return nil, err
	}
	w := net.Params() // gradients on it copy no weights
	copy(w, net.Init(cfg.Seed))
	ss := ds.SampleSize()
	x := make([]float32, cfg.Batch*ss)
	y := make([]uint8, cfg.Batch)
	sum := NewShardSum(cfg.Shards, len(w))
	var step int64
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		start := time.Now()
		perm := Permutation(cfg.Seed, epoch, ds.Train.N)
		var train Stats
		for s := 0; s < spe; s++ {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			idx := BatchIndices(perm, s, cfg.Batch)
			count := 0
			for k := 0; k < cfg.Shards; k++ {
				lo, hi := ShardRange(cfg.Batch, cfg.Shards, k)
				ds.Train.Gather(idx[lo:hi], x, y)
				grad, st, err := net.GradientParts(w, x[:(hi-lo)*ss], y[:hi-lo])
				if err != nil {
					return nil, err
				}
				sum.AddParts(k, grad)
				count += st.Count
				train = train.Add(st)
			}
			sum.Apply(opt, w, count, uint64(step))
			step++
		}
		dur := time.Since(start)
		test, err := net.Evaluate(w, ds.Test.X, ds.Test.Y)
		if err != nil {
			return nil, err
		}
		if report != nil {
			report(EpochReport{
				Epoch: epoch, Step: step,
				TrainLoss: train.Loss(), TrainAcc: train.Accuracy(),
				TestLoss: test.Loss(), TestAcc: test.Accuracy(),
				Duration: dur, SamplesPerSec: float64(train.Count) / dur.Seconds(),
			})
		}
	}
	return w, nil
}
