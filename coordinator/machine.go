package coordinator

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
)

// Sentinel errors of the run state machine.
var (
	// ErrDropped marks a gradient the machine did not use; the wrapped
	// message says why. It is not fatal: the caller logs it and goes on.
	ErrDropped = errors.New("coordinator: gradient dropped")
	// ErrStale marks a gradient for a step already committed or a shard
	// already received: the normal fate of redelivered tasks.
	ErrStale = fmt.Errorf("%w: stale", ErrDropped)
	// ErrAhead marks a gradient of a step after the current one whose
	// tasks may be out (up to holdAhead), which the caller holds and hands in
	// again once the current step commits. (Workers step their replicas
	// themselves, so the grads stream stores such a gradient before the
	// current step's last one whenever that one is late: a task retried
	// after a broker restart, a straggler.)
	ErrAhead = errors.New("coordinator: gradient of a later step")
	// ErrCheckpoint marks a checkpoint that does not belong to the run.
	ErrCheckpoint = errors.New("coordinator: checkpoint does not fit the run")
)

// Evaluator scores weights on the validation split. It must be a pure
// function of the weights.
type Evaluator interface {
	Evaluate(weights []float32) (model.Stats, error)
}

// Ready is the work a machine hands back after an input. The caller performs
// it in field order, and may persist Checkpoint asynchronously, because the
// grads stream already holds everything needed to rebuild it.
type Ready struct {
	Commit     *protocol.Params       // the commit record of a new weights version: its check
	State      *protocol.Params       // a snapshot workers can start from (its slices are Checkpoint's, or its own: read-only)
	Tasks      []protocol.Task        // shard tasks to publish
	Epoch      *objstore.HistoryEntry // an epoch just finished
	Best       bool                   // Epoch improved the best validation accuracy: save the weights
	Checkpoint *objstore.Checkpoint   // a snapshot to persist (owns its slices)
	Evaluate   *EvalRequest           // an epoch's evaluation to run, then hand to Evaluated (with EvaluateLater)
	Done       bool                   // the run has finished every epoch (its last evaluation may still be out)
}

// Machine is a run as a pure state machine: decoded gradients go in, the
// work to do comes out. It never touches the network, storage or the clock
// (times are passed in), so recovery replays the grads stream through the
// same machine and arrives at the same bytes.
type Machine struct {
	run           string
	cfg           config.Config
	trainN        int
	stepsPerEpoch int
	totalSteps    uint64
	opt           model.Optimizer
	eval          Evaluator

	weights []float32
	check   [8]byte // model.Check of weights
	step    uint64  // weights version: optimizer steps applied so far

	perms [2]epochPerm // sample orders of the epochs tasks were made for last

	comb       *model.ShardSum       // the current step's gradients, summed in shard order
	stats      []protocol.ShardStats // the current step's per-shard statistics
	seqs       []uint64              // grads-stream sequence of each shard's gradient
	firsts     []int                 // the first shard that gradient covers: its own, or 0 for a sum of shards 0..n-1
	used       []uint64              // seqs of the step committed last
	usedFirsts []int                 // firsts of the step committed last
	lastSeq    uint64                // grads-stream sequence of the last gradient that completed a step
	ahead      []uint64              // seqs of later steps' gradients handed back with ErrAhead, not yet taken
	partsFrom  uint64                // seq of the earliest part of a gradient still being put together (0: none)

	part    partial
	ended   partial // the last epoch ended's part, for EpochSoFar (never saved)
	history []objstore.HistoryEntry

	evalLater bool                    // epochs' evaluations are handed out (EvaluateLater)
	pending   []objstore.HistoryEntry // ended epochs waiting for their evaluations, oldest first: the training half of their entries
	held      []*objstore.Checkpoint  // checkpoints waiting for those evaluations' history entries
}

// NewMachine starts run from init, or from ck when it is not nil. The
// machine keeps and updates the weights in init itself (the caller must not
// write to it): a network's own buffer (model.Network.Params) there spares
// every gradient and evaluation copying the weights in.
func NewMachine(run string, cfg config.Config, trainN int, opt model.Optimizer, eval Evaluator, init []float32, ck *objstore.Checkpoint, now time.Time) (*Machine, error) {
	spe := model.StepsPerEpoch(trainN, cfg.BatchSize)
	if spe < 1 {
		return nil, fmt.Errorf("coordinator: %d training samples make no batch of %d", trainN, cfg.BatchSize)
	}
	m := &Machine{
		run: run, cfg: cfg, trainN: trainN, stepsPerEpoch: spe,
		totalSteps: uint64(spe) * uint64(cfg.Epochs),
		opt:        opt, eval: eval,
		weights: init,
		comb:    model.NewShardSum(cfg.Shards, len(init)),
		stats:   make([]protocol.ShardStats, cfg.Shards),
		seqs:    make([]uint64, cfg.Shards),
		firsts:  make([]int, cfg.Shards),
		perms:   [2]epochPerm{{epoch: -1}, {epoch: -1}},
	}
	m.part.EpochStart = now.UnixNano()
	if ck != nil {
		if ck.Run != run || len(ck.Weights) != len(init) {
			return nil, fmt.Errorf("%w: run %s with %d weights, want run %s with %d", ErrCheckpoint, ck.Run, len(ck.Weights), run, len(init))
		}
		if err := opt.UnmarshalState(ck.OptState); err != nil {
			return nil, fmt.Errorf("%w: optimizer state: %v", ErrCheckpoint, err)
		}
		if err := m.part.unmarshal(ck.Partial); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
		}
		if m.part.EpochStart == 0 {
			m.part.EpochStart = now.UnixNano()
		}
		copy(m.weights, ck.Weights)
		m.step, m.lastSeq = ck.Step, ck.GradsSeq
		m.history = append([]objstore.HistoryEntry(nil), ck.History...)
	}
	m.check = model.Check(m.weights)
	return m, nil
}

// Step is the current weights version (optimizer steps applied).
func (m *Machine) Step() uint64 { return m.step }

// Epoch is the epoch the current step belongs to.
func (m *Machine) Epoch() int { return int(m.step / uint64(m.stepsPerEpoch)) }

// EpochSoFar is the training loss and accuracy of the epoch of the last
// committed step, over its steps committed so far: the whole epoch's once
// that step ended it (zero before any step of the machine's).
func (m *Machine) EpochSoFar() (loss, acc float64) {
	p := m.part
	if p.Count == 0 {
		p = m.ended
	}
	if p.Count == 0 {
		return 0, 0
	}
	return p.LossSum / float64(p.Count), float64(p.Correct) / float64(p.Count)
}

// Done reports whether every step of every epoch has been applied.
func (m *Machine) Done() bool { return m.step >= m.totalSteps }

// Check is the check (model.Check) of the current weights: what commit
// records carry and gradients must name.
func (m *Machine) Check() [8]byte { return m.check }

// Digest is the sha256 of the current weights, computed when asked for
// (at the end of a run), not with every step.
func (m *Machine) Digest() [32]byte { return model.Digest(m.weights) }

// Weights returns the current weights; the caller must not modify them.
func (m *Machine) Weights() []float32 { return m.weights }

// History returns the finished epochs.
func (m *Machine) History() []objstore.HistoryEntry { return m.history }

// LastSeq is the grads-stream sequence the current state covers: replay
// resumes after it. A later step's gradient handed back with ErrAhead and
// not taken yet holds it below that gradient's sequence (the sequence of
// its first part, for one sent in parts), and so does a gradient whose
// parts are still being put together (HoldFrom).
func (m *Machine) LastSeq() uint64 {
	seq := m.lastSeq
	for _, a := range m.ahead {
		seq = min(seq, a-1)
	}
	if m.partsFrom > 0 {
		seq = min(seq, m.partsFrom-1)
	}
	return seq
}

// HoldFrom tells the machine the sequence of the earliest part of a
// gradient sent in parts that the reader has not put together yet (0:
// none), which LastSeq then stays below: a replay from after it would
// never see that part again.
func (m *Machine) HoldFrom(seq uint64) { m.partsFrom = seq }

// StepsPerEpoch is the number of optimizer steps in one epoch.
func (m *Machine) StepsPerEpoch() int { return m.stepsPerEpoch }

// UsedSeqs returns, in shard order, the grads-stream sequences of the
// gradients the last committed step combined: each (step, shard) contributes
// exactly one.
func (m *Machine) UsedSeqs() []uint64 { return m.used }

// UsedFirsts returns, in shard order, the first shard of the gradient that
// UsedSeqs names for each shard: the shard itself, or 0 where one message
// carried the sum of shards 0..n-1. With UsedSeqs it tells one message
// covering several shards from one message counted twice.
func (m *Machine) UsedFirsts() []int { return m.usedFirsts }

// Missing lists the shards of the current step not yet received.
func (m *Machine) Missing() []int {
	var out []int
	for i := range m.cfg.Shards {
		if !m.comb.Has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Resume returns the work that gets the run going: the current version's
// commit record and a snapshot workers can start from, a task for every
// shard of the current step still missing, and the tasks of the Lookahead
// steps after it (workers rebuild each version themselves, so they work
// ahead).
// Call it at start, after replaying the stream, and whenever tasks may have
// been lost.
func (m *Machine) Resume() Ready {
	if m.Done() {
		return Ready{Done: true}
	}
	return Ready{Commit: m.commitRecord(), State: m.state(m.Snapshot()),
		Tasks: append(m.tasks(m.step, m.Missing()), m.tasksFrom(m.step+1)...)}
}

// Tasks returns the tasks of the given shards of the current step, for
// re-dispatching stragglers.
func (m *Machine) Tasks(shards []int) []protocol.Task { return m.tasks(m.step, shards) }

func (m *Machine) commitRecord() *protocol.Params {
	return &protocol.Params{Run: m.run, Step: m.step, Epoch: uint32(m.Epoch()), Check: m.check}
}

// State is the snapshot workers start from, of the weights after the last
// committed step.
func (m *Machine) State() *protocol.Params { return m.state(m.Snapshot()) }

// state is the snapshot of ck that workers start from.
func (m *Machine) state(ck *objstore.Checkpoint) *protocol.Params {
	return &protocol.Params{Run: m.run, Step: ck.Step, Epoch: uint32(ck.Epoch), Check: m.check, Weights: ck.Weights, OptState: ck.OptState}
}

// Lookahead is how many steps past the current one have their tasks out.
// Workers step their replicas themselves, so a worker that finishes a step
// finds the next one's tasks already in its consumer; two steps leave the
// coordinator a whole step to commit before its tasks are needed.
const Lookahead = 2

// EvalLookahead is how many steps past an epoch's end have their tasks out
// by the time the coordinator commits the epoch's last step (at most an
// epoch's steps less one): the workers train on through the epoch's end
// instead of waiting for the next tasks. When the coordinator evaluated the
// test set inside that commit (150-250 ms for the default run on 2 cores),
// 16 steps ahead still left a worker waiting 90 ms, 32 did not; a node's
// machine now hands the evaluation out (EvaluateLater) and commits on, but
// the commits are slower while it runs.
const EvalLookahead = 32

// holdAhead is how far past the current step the tasks out can reach, in
// this coordinator or the one before it: a gradient up to there is held,
// not dropped (ErrAhead).
const holdAhead = Lookahead + EvalLookahead

// tasksOutTo is the last step whose tasks are out while step is the
// current one: Lookahead past it, and from Lookahead steps before an
// epoch's end on, EvalLookahead past that end (at most an epoch's steps
// less one). It never decreases as step grows, so each commit hands out
// the steps from the previous step's bound on.
func tasksOutTo(step uint64, stepsPerEpoch int) uint64 {
	to := step + Lookahead
	spe := uint64(stepsPerEpoch)
	if end := to / spe * spe; end > 0 {
		to = max(to, end+min(EvalLookahead, spe-1))
	}
	return to
}

// outTo is the last step whose tasks are out.
func (m *Machine) outTo() uint64 { return tasksOutTo(m.step, m.stepsPerEpoch) }

// tasksFrom returns every task of the steps from step from to
// tasksOutTo(current step).
func (m *Machine) tasksFrom(from uint64) []protocol.Task {
	var out []protocol.Task
	for s, to := from, tasksOutTo(m.step, m.stepsPerEpoch); s <= to; s++ {
		out = append(out, m.tasks(s, m.allShards())...)
	}
	return out
}

func (m *Machine) allShards() []int {
	out := make([]int, m.cfg.Shards)
	for i := range out {
		out[i] = i
	}
	return out
}

// epochPerm is the sample order of one epoch.
type epochPerm struct {
	epoch int
	perm  []int32
}

func (m *Machine) perm(epoch int) []int32 {
	for _, p := range m.perms {
		if p.epoch == epoch {
			return p.perm
		}
	}
	m.perms[1] = m.perms[0]
	m.perms[0] = epochPerm{epoch: epoch, perm: model.Permutation(m.cfg.Seed, epoch, m.trainN)}
	return m.perms[0].perm
}

// tasks returns the tasks of the given shards of step, none past the run's end.
func (m *Machine) tasks(step uint64, shards []int) []protocol.Task {
	if step >= m.totalSteps {
		return nil
	}
	epoch := int(step / uint64(m.stepsPerEpoch))
	perm, inEpoch := m.perm(epoch), int(step%uint64(m.stepsPerEpoch))
	out := make([]protocol.Task, 0, len(shards))
	for _, s := range shards {
		out = append(out, protocol.Task{
			Run: m.run, Step: step, Epoch: uint32(epoch), Shard: uint16(s), Shards: uint16(m.cfg.Shards),
			Indices: append([]int32(nil), model.ShardIndices(perm, inEpoch, m.cfg.BatchSize, m.cfg.Shards, s)...),
		})
	}
	return out
}

// Grad takes a gradient read from the grads stream at sequence seq. A
// gradient that cannot be used (stale, duplicate, for another weights
// version) returns an error wrapping ErrDropped and changes nothing. The
// machine does not keep g: the caller may reuse it once Grad returns.
//
// A gradient of a later step whose tasks may be out (up to holdAhead steps
// ahead) returns ErrAhead, unwrapped and unchanged: the caller keeps it and
// hands it in again after the current step commits.
func (m *Machine) Grad(g *protocol.Grad, seq uint64, now time.Time) (Ready, error) {
	return m.GradParts(g, model.Parts{g.Grad}, seq, now)
}

// GradParts is Grad for a gradient whose values are values, held in pieces
// (model.Network.GradientParts), rather than g.Grad: the local loop hands
// in what its network computed without copying it into one buffer first.
// An ErrAhead gradient is the caller's to keep, as with Grad.
func (m *Machine) GradParts(g *protocol.Grad, values model.Parts, seq uint64, now time.Time) (Ready, error) {
	m.ahead = slices.DeleteFunc(m.ahead, func(a uint64) bool { return a == seq })
	if g.Run == m.run && !m.Done() && g.Step > m.step && g.Step <= m.step+holdAhead && g.Step < m.totalSteps {
		m.ahead = append(m.ahead, seq)
		return Ready{}, ErrAhead
	}
	if err := m.accept(g, values.Len()); err != nil {
		return Ready{}, fmt.Errorf("%s step %d shard %d from %q: %w", g.Run, g.Step, g.Shard, g.Worker, err)
	}
	if g.Shard == 0 && g.Shards() == m.cfg.Shards && len(values) == 1 {
		// The step's whole sum (a lone worker's gradient): read where it
		// is, without a copy, as the step is applied before this returns.
		m.comb.Borrow(values[0])
	} else {
		m.comb.AddShards(int(g.Shard), g.Shards(), values)
	}
	for i, st := range g.Stats {
		m.stats[int(g.Shard)+i] = st
		m.seqs[int(g.Shard)+i] = seq
		m.firsts[int(g.Shard)+i] = int(g.Shard)
	}
	if !m.comb.Complete() {
		return Ready{}, nil
	}
	m.lastSeq = max(m.lastSeq, seq)
	return m.commit(now)
}

// Forget tells the machine that the caller dropped the gradient at seq it
// handed back with ErrAhead: replay need not go back for it.
func (m *Machine) Forget(seq uint64) {
	m.ahead = slices.DeleteFunc(m.ahead, func(a uint64) bool { return a == seq })
}

// accept checks g, whose gradient holds values values.
func (m *Machine) accept(g *protocol.Grad, values int) error {
	if g.Run == m.run && !m.Done() && (g.Step < m.step || g.Step == m.step && m.has(g)) {
		return ErrStale
	}
	err := m.reject(g, values)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDropped, err)
	}
	return nil
}

// has reports whether the current step holds what g brings.
func (m *Machine) has(g *protocol.Grad) bool {
	return int(g.Shard)+g.Shards() <= m.cfg.Shards && m.comb.Holds(int(g.Shard), g.Shards()) // out of range: rejected
}

func (m *Machine) reject(g *protocol.Grad, values int) error {
	switch {
	case g.Run != m.run:
		return errors.New("belongs to another run")
	case m.Done():
		return errors.New("the run is finished")
	case g.Step > m.step:
		return fmt.Errorf("step is ahead of the current step %d", m.step)
	case int(g.Shard)+g.Shards() > m.cfg.Shards:
		return fmt.Errorf("shards %d..%d out of range [0,%d)", g.Shard, int(g.Shard)+g.Shards()-1, m.cfg.Shards)
	case values != len(m.weights):
		return fmt.Errorf("%d gradient values, want %d", values, len(m.weights))
	case g.Weights != m.check:
		return fmt.Errorf("computed on weights %x, want %x", g.Weights, m.check)
	}
	for i, st := range g.Stats {
		lo, hi := model.ShardRange(m.cfg.BatchSize, m.cfg.Shards, int(g.Shard)+i)
		if int(st.Count) != hi-lo {
			return fmt.Errorf("shard %d: %d samples, want %d", int(g.Shard)+i, st.Count, hi-lo)
		}
	}
	return nil
}

// commit takes the mean of the combined shards, applies the optimizer and
// moves to the next step.
func (m *Machine) commit(now time.Time) (Ready, error) {
	var count int
	for _, st := range m.stats { // shard order: the float64 loss sum is order-sensitive too
		count += int(st.Count)
		m.part.LossSum += st.LossSum
		m.part.Correct += uint64(st.Correct)
		m.part.Count += uint64(st.Count)
	}
	m.comb.Apply(m.opt, m.weights, count, m.step)
	m.step++
	m.check = model.Check(m.weights)
	m.used = append(m.used[:0], m.seqs...)
	m.usedFirsts = append(m.usedFirsts[:0], m.firsts...)

	var r Ready
	epochEnd := m.step%uint64(m.stepsPerEpoch) == 0
	if epochEnd {
		e := m.endEpoch(now)
		m.pending = append(m.pending, e)
		r.Evaluate = &EvalRequest{Epoch: e.Epoch, Step: m.step, Weights: append([]float32(nil), m.weights...)}
	}
	var ck *objstore.Checkpoint
	if epochEnd || m.step%uint64(m.cfg.CheckpointEvery) == 0 || m.Done() {
		ck = m.Snapshot()
		if len(m.pending) > 0 {
			m.hold(ck) // it goes out with the history it must hold (Evaluated)
		} else {
			r.Checkpoint = ck
		}
	}
	if r.Evaluate != nil && !m.evalLater {
		// Evaluated here and now: nothing else is out, so what it releases
		// is the epoch's entry with the checkpoint of its end.
		rs, err := m.EvaluateNow(r.Evaluate)
		if err != nil {
			return Ready{}, err
		}
		r.Evaluate, r.Epoch, r.Best, r.Checkpoint = nil, rs[0].Epoch, rs[0].Best, rs[0].Checkpoint
	}
	r.Commit = m.commitRecord()
	if ck != nil {
		// The last step's too: once it is stored, the run's gradients can
		// all go, and a run extended later starts its workers from it.
		r.State = m.state(ck)
	}
	if m.Done() {
		r.Done = true
		return r, nil
	}
	r.Tasks = m.tasksFrom(tasksOutTo(m.step-1, m.stepsPerEpoch) + 1) // the steps before went out already
	return r, nil
}

// Snapshot returns a checkpoint of the state after the last committed step.
func (m *Machine) Snapshot() *objstore.Checkpoint {
	return &objstore.Checkpoint{
		Run:      m.run,
		Step:     m.step,
		Epoch:    m.Epoch(),
		GradsSeq: m.LastSeq(),
		Weights:  append([]float32(nil), m.weights...),
		OptState: m.opt.MarshalState(),
		History:  append([]objstore.HistoryEntry(nil), m.history...),
		Partial:  m.part.marshal(),
	}
}
