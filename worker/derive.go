package worker

import (
	"context"
	"slices"
	"time"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// derived is how a worker knows a run's tasks without receiving them. The
// coordinator makes each task from the run's config alone — the epoch's
// sample order (model.Permutation), the step's batch in it and the shard's
// part of that (model.ShardIndices) — and a worker can make the same. A
// replica that has waited selfServeAfter for shards of its step computes
// them from the tasks it makes: the shards of a worker that died, or whose
// tasks a broker restart left pending, no longer wait for their tasks to
// come back through the work queue, behind every task out (after a broker
// restart under the chaos harness the run waited 12.9 s, until the ack
// wait). What a worker makes is trusted only once a task it received has
// matched it, and never after one did not.
type derived struct {
	verified, refused bool
	epochs            [2]int     // the two epochs last asked for, latest first
	perms             [2][]int32 // their sample orders
}

// selfServeAfter is how long a replica waits for a step's shards before it
// computes those still missing itself: half a second, or four times as long
// as a shard takes this worker if that is longer, so that a model whose
// shards take long is not computed twice for a worker merely slower.
func (r *run) selfServeAfter() time.Duration {
	return max(500*time.Millisecond, 4*r.shardTime)
}

// indices are the sample indices of shard of step, as the run's
// coordinator hands them out; the slice is the run's and changes with the
// epoch.
func (r *run) indices(step uint64, shard int) (epoch int, idx []int32) {
	spe := uint64(model.StepsPerEpoch(r.data.Train.N, r.cfg.BatchSize))
	epoch = int(step / spe)
	d := &r.der
	switch {
	case d.perms[0] != nil && d.epochs[0] == epoch:
	case d.perms[1] != nil && d.epochs[1] == epoch: // tasks of two epochs meet at an epoch's end
		d.epochs[0], d.epochs[1], d.perms[0], d.perms[1] = d.epochs[1], d.epochs[0], d.perms[1], d.perms[0]
	default:
		d.epochs[1], d.perms[1] = d.epochs[0], d.perms[0]
		d.epochs[0], d.perms[0] = epoch, model.Permutation(r.cfg.Seed, epoch, r.data.Train.N)
	}
	return epoch, model.ShardIndices(d.perms[0], int(step%spe), r.cfg.BatchSize, r.cfg.Shards, shard)
}

// note compares a task received with the one the worker makes for the same
// shard.
func (r *run) note(t *protocol.Task) {
	if r.der.refused {
		return
	}
	epoch, idx := r.indices(t.Step, int(t.Shard))
	if uint32(epoch) == t.Epoch && slices.Equal(idx, t.Indices) {
		r.der.verified = true
		return
	}
	r.der.verified, r.der.refused = false, true
}

// task is the task of shard of step as the coordinator makes it.
func (r *run) task(step uint64, shard int) protocol.Task {
	epoch, idx := r.indices(step, shard)
	return protocol.Task{Run: r.sig, Step: step, Epoch: uint32(epoch), Shard: uint16(shard), Shards: uint16(r.cfg.Shards),
		Indices: slices.Clone(idx)}
}

// serveMissing computes the shards of the replica's step that it still
// lacks, from the tasks it makes, and publishes their gradients: whoever
// holds their tasks is dead or late. The tasks, when they come back, are
// stale. It reports whether it computed any.
func (w *Worker) serveMissing(ctx context.Context, r *run, step uint64, waited time.Duration) bool {
	rp := r.rep
	if !r.der.verified || !rp.valid || rp.step != step {
		return false
	}
	if len(w.pending) > 0 {
		w.flush()
	}
	var shards []int
	for shard := range r.cfg.Shards {
		if rp.sum.Has(shard) {
			continue
		}
		t := r.task(step, shard)
		g, _, err := r.gradient(&t)
		if err != nil {
			w.opts.Log.Warn("worker: computing a missing shard failed", "task", t.String(), "err", err)
			break
		}
		g.Worker, g.Weights = w.opts.ID, rp.check
		w.sendShard([]heldTask{{ctx: ctx, task: t, start: time.Now()}}, g, r)
		shards = append(shards, shard)
	}
	if len(shards) > 0 {
		w.opts.Log.Info("worker: computed shards no task brought", "run", r.sig, "step", step, "shards", shards, "waited", waited)
	}
	return len(shards) > 0
}
