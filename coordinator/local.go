package coordinator

import (
	"context"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// TrainLocal runs cfg in this process with no broker and no store: the same
// machine, the same shards and the same combine order as a distributed run,
// so it ends with the same weights bytes. maxSteps > 0 stops early. It is
// the reference that tests and benchmarks compare distributed runs with.
func TrainLocal(ctx context.Context, cfg config.Config, ds *model.Dataset, maxSteps uint64) (*Result, error) {
	l, err := newLocalLoop(cfg, ds)
	if err != nil {
		return nil, err
	}
	defer l.close()
	if err := l.run(ctx, maxSteps); err != nil {
		return nil, err
	}
	return l.result(), nil
}

// localLoop is TrainLocal's state, so that it can be run a few steps at a
// time (the benchmarks interleave it with a distributed run), and what a
// coordinator recomputes trimmed steps with (recompute).
type localLoop struct {
	net    *model.Network
	m      *Machine
	ds     *model.Dataset
	runID  string
	x      []float32
	y      []uint8
	shards []int
	seq    uint64      // the grads-stream sequence the machine is given with every gradient: they are in no stream
	ready  func(Ready) // takes the machine's actions, if set
}

func newLocalLoop(cfg config.Config, ds *model.Dataset) (*localLoop, error) {
	net, opt, err := cfg.NewModel(ds)
	if err != nil {
		return nil, err
	}
	run := cfg.Signature()
	w := net.Params() // gradients on the machine's weights copy nothing
	copy(w, net.Init(cfg.Seed))
	m, err := NewMachine(run, cfg, ds.Train.N, opt, evaluator{net: net, test: &ds.Test}, w, nil, time.Now())
	if err != nil {
		net.Close()
		return nil, err
	}
	return loopOn(m, net, ds, cfg), nil
}

// loopOn is a local loop driving m with net's gradients.
func loopOn(m *Machine, net *model.Network, ds *model.Dataset, cfg config.Config) *localLoop {
	l := &localLoop{net: net, m: m, ds: ds, runID: cfg.Signature(), shards: m.allShards(),
		x: make([]float32, (cfg.BatchSize/cfg.Shards+1)*ds.SampleSize()),
		y: make([]uint8, cfg.BatchSize/cfg.Shards+1),
	}
	return l
}

// recompute trains the machine, resumed from a checkpoint older than the
// run's newest, in this process up to the newest checkpoint's step: the
// grads stream no longer holds the gradients between the two (see
// trimmer), and tasks for them would come back as gradients under the
// message ids of the trimmed ones, which the stream drops as duplicates.
// The gradients are the workers' bytes (the same machine, shards and
// combine order), so the weights are too. The machine is given the last
// sequence its checkpoint covered with each of them, so that its next
// checkpoint claims no stream message it never read. Nothing is published
// (those steps were committed before), but the checkpoints it passes are
// saved again: the newest may be the damaged one. It runs with the lease
// kept alive, and stops as soon as the lease is lost (ctx ends): another
// coordinator has the run.
func (n *node) recompute(ctx context.Context) error {
	from, to := n.m.Step(), n.catchUp
	n.opts.Log.Warn("coordinator: recomputing the steps to the newest checkpoint's here: the grads stream keeps only the gradients since that one", "run", n.run, "from_step", from, "to_step", to)
	start := time.Now()
	// `coordinator status` shows the steps go by, as it does live, and
	// their end. The status is written only while the broker is
	// connected: a write would wait out its timeout on the computing
	// goroutine otherwise.
	report := func(recomputing bool) {
		if n.js.Conn().IsConnected() {
			n.reportStatus(ctx, false, recomputing)
		}
	}
	report(true)
	reported := time.Now()
	l := loopOn(n.m, n.net, n.ds, n.cfg)
	l.seq, l.ready = n.m.LastSeq(), func(r Ready) {
		if r.Checkpoint != nil {
			n.saver.save(r.Checkpoint, r.Best)
		}
		if r.Commit != nil && time.Since(reported) >= n.opts.StatusEvery {
			report(true)
			reported = time.Now()
		}
	}
	err := l.run(ctx, to)
	report(false)
	if err != nil {
		return err
	}
	n.step.Store(n.m.Step())
	n.opts.Log.Info("recomputed the steps to the newest checkpoint's", "run", n.run, "steps", n.m.Step()-from, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// run trains until the run is done or, with until > 0, until step until
// is committed.
func (l *localLoop) run(ctx context.Context, until uint64) error {
	dim := l.ds.SampleSize()
	for !l.m.Done() && (until == 0 || l.m.Step() < until) {
		if err := ctx.Err(); err != nil {
			return err
		}
		check := l.m.Check()
		for _, t := range l.m.Tasks(l.shards) {
			n := len(t.Indices)
			x, y := l.x[:n*dim], l.y[:n]
			l.ds.Train.Gather(t.Indices, x, y)
			values, st, err := l.net.GradientParts(l.m.Weights(), x, y)
			if err != nil {
				return err
			}
			g := &protocol.Grad{Run: l.runID, Step: t.Step, Shard: t.Shard, Worker: "local", Weights: check,
				Stats: []protocol.ShardStats{{LossSum: st.LossSum, Correct: uint32(st.Correct), Count: uint32(st.Count)}}}
			r, err := l.m.GradParts(g, values, l.seq, time.Now())
			if err != nil {
				return err
			}
			if l.ready != nil {
				l.ready(r)
			}
			if r.Evaluate == nil {
				continue
			}
			// A machine that evaluates later (the node's): at once, here.
			rs, err := l.m.EvaluateNow(r.Evaluate)
			if err != nil {
				return err
			}
			if l.ready != nil {
				for _, r := range rs {
					l.ready(r)
				}
			}
		}
	}
	return nil
}

func (l *localLoop) result() *Result {
	return &Result{Run: l.runID, Step: l.m.Step(), Epoch: l.m.Epoch(), Digest: l.m.Digest(), History: l.m.History()}
}

func (l *localLoop) close() { l.net.Close() }
