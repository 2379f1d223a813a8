package coordinator

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
)

// fakeGrad is a deterministic stand-in for a worker: its gradient depends
// only on the weights and the task, like the real one.
func fakeGrad(t protocol.Task, w []float32) *protocol.Grad {
	g := make([]float32, len(w))
	var loss float64
	for i := range g {
		v := w[i]
		for _, x := range t.Indices {
			v += float32(math.Sin(float64(x)+float64(i))) * 0.01
		}
		g[i] = v
		loss += float64(v * v)
	}
	return &protocol.Grad{Run: t.Run, Step: t.Step, Shard: t.Shard, Worker: "fake",
		Weights: model.Check(w), Stats: []protocol.ShardStats{{LossSum: loss, Correct: uint32(len(t.Indices) / 2),
			Count: uint32(len(t.Indices))}}, Grad: g}
}

type zeroEval struct{}

func (zeroEval) Evaluate(w []float32) (model.Stats, error) {
	return model.Stats{LossSum: float64(w[0] * w[0]), Correct: 1, Count: 2}, nil
}

func testConfig() config.Config {
	c := config.Default()
	c.BatchSize, c.Shards, c.Epochs, c.CheckpointEvery = 8, 3, 2, 5
	c.Optimizer.Name = "sgd"
	c.Optimizer.LR = 0.1
	return c
}

func newTestMachine(t *testing.T, ck *objstore.Checkpoint) *Machine {
	t.Helper()
	return newMachineWith(t, testConfig(), ck)
}

func newMachineWith(t *testing.T, cfg config.Config, ck *objstore.Checkpoint) *Machine {
	t.Helper()
	return newMachineEval(t, cfg, zeroEval{}, ck)
}

// newMachineEval is a machine of cfg over 40 samples and 16 weights,
// evaluated by eval, resumed from ck if not nil.
func newMachineEval(t *testing.T, cfg config.Config, eval Evaluator, ck *objstore.Checkpoint) *Machine {
	t.Helper()
	opt, err := model.NewOptimizer(cfg.OptimizerSpec(0), 16)
	if err != nil {
		t.Fatal(err)
	}
	init := make([]float32, 16)
	for i := range init {
		init[i] = float32(i) / 16
	}
	m, err := NewMachine("run-1", cfg, 40, opt, eval, init, ck, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drive answers the machine's tasks in an order chosen by rng, with
// duplicates, until it is done or stopAt steps are committed. It returns
// the last checkpoint seen. It checks that the machine hands out each step's
// tasks Lookahead steps ahead, all of them before the step is current and
// none twice, and before the step whose commit evaluates an epoch, the
// tasks of EvalLookahead steps past it.
func drive(t *testing.T, m *Machine, rng *rand.Rand, stopAt uint64) *objstore.Checkpoint {
	t.Helper()
	var seq uint64
	var last *objstore.Checkpoint
	published := map[uint64][]protocol.Task{}
	record := func(r Ready) {
		for _, task := range r.Tasks {
			published[task.Step] = append(published[task.Step], task)
		}
	}
	r := m.Resume()
	record(r)
	for !r.Done && m.Step() < stopAt {
		step := m.Step()
		tasks := published[step]
		delete(published, step)
		if len(tasks) != m.cfg.Shards {
			t.Fatalf("step %d: %d tasks handed out, want %d", step, len(tasks), m.cfg.Shards)
		}
		ahead := uint64(Lookahead)
		spe := uint64(m.stepsPerEpoch)
		if (step+1)%spe == 0 { // its commit ends the epoch: the coordinator evaluates
			ahead = 1 + min(EvalLookahead, spe-1)
		}
		for d := uint64(1); d <= ahead; d++ {
			if next := published[step+d]; len(next) != m.cfg.Shards && step+d < m.totalSteps {
				t.Fatalf("step %d: %d tasks of step %d handed out, want %d", step, len(next), step+d, m.cfg.Shards)
			}
		}
		rng.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
		var next Ready
		for i, task := range tasks {
			g := fakeGrad(task, m.Weights())
			seq++
			if rng.IntN(3) == 0 && i > 0 { // a redelivered earlier shard arrives again
				dup := fakeGrad(tasks[0], m.Weights())
				if _, err := m.Grad(dup, seq, time.Unix(0, 0)); !errors.Is(err, ErrStale) {
					t.Fatalf("duplicate shard accepted: %v", err)
				}
				seq++
			}
			got, err := m.Grad(g, seq, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if i < len(tasks)-1 && (got.Commit != nil || got.Done) {
				t.Fatalf("step committed after %d of %d shards", i+1, len(tasks))
			}
			next = got
		}
		if next.Commit == nil || next.Commit.Step != step+1 || next.Commit.Check != m.Check() || m.Check() != model.Check(m.Weights()) || next.Commit.Snapshot() {
			t.Fatalf("step %d: commit record %+v", step, next.Commit)
		}
		if next.Checkpoint != nil {
			last = next.Checkpoint
			if !next.Done && (next.State == nil || next.State.Step != m.Step() || model.Check(next.State.Weights) != next.State.Check) {
				t.Fatalf("step %d: checkpoint without a matching snapshot for workers", m.Step())
			}
		}
		record(next)
		r = next
	}
	return last
}

// A gradient of the next step that the stream holds before the current
// step's last one is handed back, keeps replay from skipping it, and is
// taken once the step commits.
func TestMachineHandsBackNextStepGradients(t *testing.T) {
	twin := newTestMachine(t, nil)
	drive(t, twin, rand.New(rand.NewPCG(1, 1)), 1)

	m := newTestMachine(t, nil)
	tasks := m.Resume().Tasks // step 0's shards, then step 1's, ...
	shards := m.cfg.Shards
	for i := 0; i < shards-1; i++ {
		if _, err := m.Grad(fakeGrad(tasks[i], m.Weights()), uint64(i+1), time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	early := fakeGrad(tasks[shards], twin.Weights()) // step 1 shard 0, on the weights step 0 will produce
	if _, err := m.Grad(early, 10, time.Unix(0, 0)); err != ErrAhead {
		t.Fatalf("next-step gradient: %v, want ErrAhead", err)
	}
	r, err := m.Grad(fakeGrad(tasks[shards-1], m.Weights()), 11, time.Unix(0, 0))
	if err != nil || r.Commit == nil || m.Step() != 1 {
		t.Fatalf("last shard: %v, commit %+v", err, r.Commit)
	}
	if m.LastSeq() != 9 || m.Snapshot().GradsSeq != 9 {
		t.Fatalf("replay would start after seq %d (snapshot %d), want 9: the held gradient is not taken yet", m.LastSeq(), m.Snapshot().GradsSeq)
	}
	if _, err := m.Grad(early, 10, time.Unix(0, 0)); err != nil {
		t.Fatalf("held gradient handed in again: %v", err)
	}
	if m.LastSeq() != 11 || len(m.Missing()) != shards-1 {
		t.Fatalf("after the held gradient: last seq %d, missing %v", m.LastSeq(), m.Missing())
	}
	// A gradient whose parts the reader is still putting together, the
	// first read at seq 8, holds replay back to it; once put together
	// (or dropped), it does not.
	m.HoldFrom(8)
	if m.LastSeq() != 7 || m.Snapshot().GradsSeq != 7 {
		t.Fatalf("with a part read at seq 8 pending: replay would start after seq %d (snapshot %d), want 7", m.LastSeq(), m.Snapshot().GradsSeq)
	}
	m.HoldFrom(0)
	if m.LastSeq() != 11 {
		t.Fatalf("with no part pending: last seq %d, want 11", m.LastSeq())
	}
}

// TestMachineHoldsGradientsUpToLookaheadSteps: a gradient of any step whose
// tasks are out (up to Lookahead past the current one) is handed back to be
// held, not dropped — once read past in the stream, a dropped gradient is
// never read again, and a worker that recomputes it publishes the same
// message id, which the stream drops as a duplicate.
func TestMachineHoldsGradientsUpToLookaheadSteps(t *testing.T) {
	cfg := testConfig()
	cfg.Epochs = 10 // steps past holdAhead exist
	twin := newMachineWith(t, cfg, nil)
	drive(t, twin, rand.New(rand.NewPCG(1, 1)), 2)

	m := newMachineWith(t, cfg, nil)
	if holdAhead+1 >= m.totalSteps {
		t.Fatalf("the run has %d steps: none past holdAhead", m.totalSteps)
	}
	tasks := m.Resume().Tasks // steps 0..Lookahead, shard by shard
	shards := m.cfg.Shards
	early := fakeGrad(tasks[2*shards], twin.Weights()) // step 2 shard 0, on the weights steps 0 and 1 will produce
	if _, err := m.Grad(early, 1, time.Unix(0, 0)); err != ErrAhead {
		t.Fatalf("gradient two steps ahead: %v, want ErrAhead", err)
	}
	farthest := *early
	farthest.Step = holdAhead // a predecessor's tasks past an epoch's end reach this far
	if _, err := m.Grad(&farthest, 3, time.Unix(0, 0)); err != ErrAhead {
		t.Fatalf("gradient %d steps ahead: %v, want ErrAhead", holdAhead, err)
	}
	m.Forget(3)
	beyond := *early
	beyond.Step = holdAhead + 1 // no coordinator hands out tasks that far ahead
	if _, err := m.Grad(&beyond, 2, time.Unix(0, 0)); !errors.Is(err, ErrDropped) {
		t.Fatalf("gradient past the tasks out: %v, want ErrDropped", err)
	}
	seq := uint64(10)
	for step := 0; step < 2; step++ {
		for k := 0; k < shards; k++ {
			seq++
			if _, err := m.Grad(fakeGrad(tasks[step*shards+k], m.Weights()), seq, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if m.LastSeq() != 0 {
			t.Fatalf("after step %d: replay would start after seq %d, want 0: the held gradient is not taken yet", step, m.LastSeq())
		}
		_, err := m.Grad(early, 1, time.Unix(0, 0))
		if want := map[int]error{0: ErrAhead, 1: nil}[step]; err != want {
			t.Fatalf("held gradient handed in after step %d: %v, want %v", step, err, want)
		}
	}
	if m.Step() != 2 || len(m.Missing()) != shards-1 {
		t.Fatalf("at step %d, missing %v: want step 2 with shard 0 in", m.Step(), m.Missing())
	}
}

func TestMachineOrderDoesNotMatter(t *testing.T) {
	a := newTestMachine(t, nil)
	drive(t, a, rand.New(rand.NewPCG(1, 1)), math.MaxUint64)
	b := newTestMachine(t, nil)
	drive(t, b, rand.New(rand.NewPCG(2, 2)), math.MaxUint64)
	if !a.Done() || !b.Done() {
		t.Fatal("runs did not finish")
	}
	if a.Step() != 10 {
		t.Fatalf("finished at step %d, want 2 epochs of 5 steps", a.Step())
	}
	if a.Digest() != b.Digest() {
		t.Fatal("arrival order changed the weights")
	}
	if len(a.History()) != 2 || a.History()[0].Epoch != 0 || a.History()[1].Epoch != 1 {
		t.Fatalf("history %+v", a.History())
	}
}

func TestMachineResumesFromSnapshot(t *testing.T) {
	whole := newTestMachine(t, nil)
	drive(t, whole, rand.New(rand.NewPCG(1, 1)), math.MaxUint64)

	first := newTestMachine(t, nil)
	ck := drive(t, first, rand.New(rand.NewPCG(3, 3)), 7)
	if ck == nil || ck.Step != 5 {
		t.Fatalf("checkpoint %+v, want one at step 5", ck)
	}
	second := newTestMachine(t, ck)
	if second.Step() != 5 || second.LastSeq() != ck.GradsSeq || len(second.History()) != 1 {
		t.Fatalf("restored at step %d seq %d history %d", second.Step(), second.LastSeq(), len(second.History()))
	}
	drive(t, second, rand.New(rand.NewPCG(4, 4)), math.MaxUint64)
	if second.Digest() != whole.Digest() {
		t.Fatal("a run resumed from a checkpoint ended with other weights")
	}
	if len(second.History()) != 2 || second.History()[0] != whole.History()[0] {
		t.Fatalf("history after resume %+v, want %+v", second.History(), whole.History())
	}
}

func TestMachineRejectsForeignGradients(t *testing.T) {
	m := newTestMachine(t, nil)
	task := m.Resume().Tasks[0]
	good := fakeGrad(task, m.Weights())
	for name, mutate := range map[string]func(g *protocol.Grad){
		"other run":     func(g *protocol.Grad) { g.Run = "run-2" },
		"future step":   func(g *protocol.Grad) { g.Step = holdAhead + 1 }, // no task of it can be out
		"wrong weights": func(g *protocol.Grad) { g.Weights[0] ^= 1 },
		"short":         func(g *protocol.Grad) { g.Grad = g.Grad[:3] },
		"count":         func(g *protocol.Grad) { g.Stats = []protocol.ShardStats{{Count: g.Stats[0].Count + 1}} },
		"shard":         func(g *protocol.Grad) { g.Shard = 9 },
	} {
		g := *good
		mutate(&g)
		if _, err := m.Grad(&g, 1, time.Unix(0, 0)); !errors.Is(err, ErrDropped) || errors.Is(err, ErrStale) {
			t.Errorf("%s: %v, want ErrDropped", name, err)
		}
	}
	if len(m.Missing()) != m.cfg.Shards {
		t.Fatal("a rejected gradient changed the step")
	}
}

// A worker that computed the first shards of a step sends them as one
// gradient (their sum folded from zero): the machine ends with the same
// weights and history as from separate gradients, whatever of those shards
// it had already, and records the one message for each of them (first
// shard 0), the others as their own. It neither changes nor keeps the
// gradient handed to it.
func TestMachineTakesTheFirstShardsAsOneGradient(t *testing.T) {
	whole := newTestMachine(t, nil)
	drive(t, whole, rand.New(rand.NewPCG(1, 1)), math.MaxUint64)

	m := newTestMachine(t, nil)
	shards := m.cfg.Shards
	var seq uint64
	for !m.Done() {
		tasks := m.Tasks(m.allShards())
		grads := make([]*protocol.Grad, shards)
		for i, task := range tasks {
			grads[i] = fakeGrad(task, m.Weights())
		}
		n := 2 + int(m.Step())%(shards-1) // 2..shards shards in one gradient
		sum := model.NewShardSum(shards, len(m.Weights()))
		prefix := *grads[0]
		prefix.Stats = nil
		for i := range n {
			sum.Add(i, grads[i].Grad)
			prefix.Stats = append(prefix.Stats, grads[i].Stats[0])
		}
		prefix.Grad = sum.Sum()
		if m.Step()%2 == 1 { // shard 0 arrived alone before
			seq++
			if _, err := m.Grad(grads[0], seq, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		seq++
		wantSeqs, wantFirsts := make([]uint64, shards), make([]int, shards)
		for i := range n {
			wantSeqs[i] = seq
		}
		was := slices.Clone(prefix.Grad)
		r, err := m.Grad(&prefix, seq, time.Unix(0, 0))
		if err != nil {
			t.Fatalf("step %d: shards 0..%d in one gradient: %v", m.Step(), n-1, err)
		}
		if !slices.Equal(prefix.Grad, was) {
			t.Fatalf("step %d: the machine changed the gradient of shards 0..%d handed to it", m.Step(), n-1)
		}
		if n == shards {
			// The step's whole sum is read where it is (Borrow), and
			// not kept: the caller may reuse it at once.
			for i := range prefix.Grad {
				prefix.Grad[i] = float32(math.NaN())
			}
		}
		seq++
		if _, err := m.Grad(&prefix, seq, time.Unix(0, 0)); r.Commit == nil && !errors.Is(err, ErrStale) {
			t.Fatalf("step %d: the same shards again: %v, want ErrStale", m.Step(), err)
		}
		for i := n; i < shards; i++ {
			seq++
			wantSeqs[i], wantFirsts[i] = seq, i
			if _, err := m.Grad(grads[i], seq, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(m.UsedSeqs(), wantSeqs) || !slices.Equal(m.UsedFirsts(), wantFirsts) {
			t.Fatalf("step %d: used seqs %v from shards %v, want %v from %v", m.Step(), m.UsedSeqs(), m.UsedFirsts(), wantSeqs, wantFirsts)
		}
	}
	if m.Digest() != whole.Digest() {
		t.Fatal("the first shards as one gradient changed the weights")
	}
	if len(m.History()) != len(whole.History()) || m.History()[1] != whole.History()[1] {
		t.Fatalf("history %+v, want %+v", m.History(), whole.History())
	}
}
