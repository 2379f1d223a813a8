package coordinator

import (
	"errors"
	"fmt"
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
	// ErrCheckpoint marks a checkpoint that does not belong to the run.
	ErrCheckpoint = errors.New("coordinator: checkpoint does not fit the run")
)

// Evaluator scores weights on the validation split. It must be a pure
// function of the weights.
type Evaluator interface {
	Evaluate(weights []float32) (model.Stats, error)
}

// Ready is the work a machine hands back after an input. The caller performs
// it in field order: publish Params before Tasks (workers fetch the weights a
// task names), and may persist Checkpoint asynchronously, because the grads
// stream already holds everything needed to rebuild it.
type Ready struct {
	Params     *protocol.Params       // a new weights version to publish
	Tasks      []protocol.Task        // shard tasks to publish
	Epoch      *objstore.HistoryEntry // an epoch just finished
	Best       bool                   // Epoch improved the best validation accuracy: save the weights
	Checkpoint *objstore.Checkpoint   // a snapshot to persist (owns its slices)
	Done       bool                   // the run has finished every epoch
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
	digest  [32]byte
	step    uint64 // weights version: optimizer steps applied so far

	perm      []int32
	permEpoch int

	comb    *combiner // the current step's gradients, summed in shard order
	seqs    []uint64  // grads-stream sequence of each shard's gradient
	used    []uint64  // seqs of the step committed last
	lastSeq uint64    // grads-stream sequence of the last gradient that completed a step

	part    partial
	history []objstore.HistoryEntry
}

// NewMachine starts run from init, or from ck when it is not nil.
func NewMachine(run string, cfg config.Config, trainN int, opt model.Optimizer, eval Evaluator, init []float32, ck *objstore.Checkpoint, now time.Time) (*Machine, error) {
	spe := model.StepsPerEpoch(trainN, cfg.BatchSize)
	if spe < 1 {
		return nil, fmt.Errorf("coordinator: %d training samples make no batch of %d", trainN, cfg.BatchSize)
	}
	m := &Machine{
		run: run, cfg: cfg, trainN: trainN, stepsPerEpoch: spe,
		totalSteps: uint64(spe) * uint64(cfg.Epochs),
		opt:        opt, eval: eval,
		weights:   append([]float32(nil), init...),
		comb:      newCombiner(cfg.Shards, len(init)),
		seqs:      make([]uint64, cfg.Shards),
		permEpoch: -1,
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
	m.digest = model.Digest(m.weights)
	return m, nil
}

// Step is the current weights version (optimizer steps applied).
func (m *Machine) Step() uint64 { return m.step }

// Epoch is the epoch the current step belongs to.
func (m *Machine) Epoch() int { return int(m.step / uint64(m.stepsPerEpoch)) }

// Done reports whether every step of every epoch has been applied.
func (m *Machine) Done() bool { return m.step >= m.totalSteps }

// Digest is the sha256 of the current weights.
func (m *Machine) Digest() [32]byte { return m.digest }

// Weights returns the current weights; the caller must not modify them.
func (m *Machine) Weights() []float32 { return m.weights }

// History returns the finished epochs.
func (m *Machine) History() []objstore.HistoryEntry { return m.history }

// LastSeq is the grads-stream sequence the current state covers.
func (m *Machine) LastSeq() uint64 { return m.lastSeq }

// StepsPerEpoch is the number of optimizer steps in one epoch.
func (m *Machine) StepsPerEpoch() int { return m.stepsPerEpoch }

// UsedSeqs returns, in shard order, the grads-stream sequences of the
// gradients the last committed step combined: each (step, shard) contributes
// exactly one.
func (m *Machine) UsedSeqs() []uint64 { return m.used }

// Missing lists the shards of the current step not yet received.
func (m *Machine) Missing() []int {
	var out []int
	for i := range m.cfg.Shards {
		if !m.comb.has(i) {
			out = append(out, i)
		}
	}
	return out
}

// Resume returns the work that gets the current step going: its weights
// version and a task for every shard still missing. Call it at start, after
// replaying the stream, and whenever tasks may have been lost.
func (m *Machine) Resume() Ready {
	if m.Done() {
		return Ready{Done: true}
	}
	return Ready{Params: m.params(), Tasks: m.tasks(m.Missing())}
}

// Tasks returns the tasks of the given shards of the current step, for
// re-dispatching stragglers.
func (m *Machine) Tasks(shards []int) []protocol.Task { return m.tasks(shards) }

func (m *Machine) params() *protocol.Params {
	return &protocol.Params{Run: m.run, Step: m.step, Epoch: uint32(m.Epoch()), Digest: m.digest, Weights: m.weights}
}

func (m *Machine) tasks(shards []int) []protocol.Task {
	if m.Done() {
		return nil
	}
	epoch := m.Epoch()
	if m.permEpoch != epoch {
		m.perm = model.Permutation(m.cfg.Seed, epoch, m.trainN)
		m.permEpoch = epoch
	}
	batch := model.BatchIndices(m.perm, int(m.step%uint64(m.stepsPerEpoch)), m.cfg.BatchSize)
	out := make([]protocol.Task, 0, len(shards))
	for _, s := range shards {
		lo, hi := model.ShardRange(m.cfg.BatchSize, m.cfg.Shards, s)
		out = append(out, protocol.Task{
			Run: m.run, Step: m.step, Epoch: uint32(epoch), Shard: uint16(s), Shards: uint16(m.cfg.Shards),
			Indices: append([]int32(nil), batch[lo:hi]...),
		})
	}
	return out
}

// Grad takes a gradient read from the grads stream at sequence seq. A
// gradient that cannot be used (stale, duplicate, for another weights
// version) returns an error wrapping ErrDropped and changes nothing. The
// machine does not keep g: the caller may reuse it once Grad returns.
func (m *Machine) Grad(g *protocol.Grad, seq uint64, now time.Time) (Ready, error) {
	if err := m.accept(g); err != nil {
		return Ready{}, fmt.Errorf("%s step %d shard %d from %q: %w", g.Run, g.Step, g.Shard, g.Worker, err)
	}
	m.comb.add(g)
	m.seqs[g.Shard] = seq
	if !m.comb.complete() {
		return Ready{}, nil
	}
	m.lastSeq = seq
	return m.commit(now)
}

func (m *Machine) accept(g *protocol.Grad) error {
	if g.Run == m.run && !m.Done() && (g.Step < m.step || g.Step == m.step && int(g.Shard) < m.cfg.Shards && m.comb.has(int(g.Shard))) {
		return ErrStale
	}
	err := m.reject(g)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDropped, err)
	}
	return nil
}

func (m *Machine) reject(g *protocol.Grad) error {
	switch {
	case g.Run != m.run:
		return errors.New("belongs to another run")
	case m.Done():
		return errors.New("the run is finished")
	case g.Step > m.step:
		return fmt.Errorf("step is ahead of the current step %d", m.step)
	case int(g.Shard) >= m.cfg.Shards:
		return fmt.Errorf("shard out of range [0,%d)", m.cfg.Shards)
	case len(g.Grad) != len(m.weights):
		return fmt.Errorf("%d gradient values, want %d", len(g.Grad), len(m.weights))
	case g.Weights != protocol.ShortDigest(m.digest):
		return fmt.Errorf("computed on weights %x, want %x", g.Weights, protocol.ShortDigest(m.digest))
	}
	lo, hi := model.ShardRange(m.cfg.BatchSize, m.cfg.Shards, int(g.Shard))
	if int(g.Count) != hi-lo {
		return fmt.Errorf("%d samples, want %d", g.Count, hi-lo)
	}
	return nil
}

// commit takes the mean of the combined shards, applies the optimizer and
// moves to the next step.
func (m *Machine) commit(now time.Time) (Ready, error) {
	var count uint32
	for _, st := range m.comb.stats { // shard order: the float64 loss sum is order-sensitive too
		count += st.count
		m.part.LossSum += st.loss
		m.part.Correct += uint64(st.correct)
		m.part.Count += uint64(st.count)
	}
	sum := m.comb.sum
	inv := 1 / float32(count)
	for i := range sum {
		sum[i] *= inv
	}
	m.opt.Apply(m.weights, sum, int64(m.step))
	m.step++
	m.digest = model.Digest(m.weights)
	m.comb.reset()
	m.used = append(m.used[:0], m.seqs...)

	var r Ready
	if m.step%uint64(m.stepsPerEpoch) == 0 {
		entry, best, err := m.finishEpoch(now)
		if err != nil {
			return Ready{}, err
		}
		r.Epoch, r.Best = entry, best
	}
	if r.Epoch != nil || m.step%uint64(m.cfg.CheckpointEvery) == 0 || m.Done() {
		r.Checkpoint = m.Snapshot()
	}
	if m.Done() {
		r.Done = true
		return r, nil
	}
	r.Params = m.params()
	r.Tasks = m.tasks(m.Missing())
	return r, nil
}

func (m *Machine) finishEpoch(now time.Time) (*objstore.HistoryEntry, bool, error) {
	st, err := m.eval.Evaluate(m.weights)
	if err != nil {
		return nil, false, fmt.Errorf("coordinator: evaluating epoch %d: %w", m.Epoch()-1, err)
	}
	d := time.Duration(now.UnixNano() - m.part.EpochStart).Seconds()
	e := objstore.HistoryEntry{
		Epoch:     m.Epoch() - 1,
		Step:      m.step,
		TrainLoss: m.part.LossSum / float64(m.part.Count),
		TrainAcc:  float64(m.part.Correct) / float64(m.part.Count),
	}
	if st.Count > 0 {
		e.ValidLoss = st.LossSum / float64(st.Count)
		e.ValidAcc = float64(st.Correct) / float64(st.Count)
	}
	if d > 0 {
		e.DurationS = d
		e.SamplesPerS = float64(m.part.Count) / d
	}
	best := true
	for _, h := range m.history {
		if h.ValidAcc >= e.ValidAcc {
			best = false
		}
	}
	e.Best = best
	m.history = append(m.history, e)
	m.part = partial{EpochStart: now.UnixNano()}
	return &m.history[len(m.history)-1], best, nil
}

// Snapshot returns a checkpoint of the state after the last committed step.
func (m *Machine) Snapshot() *objstore.Checkpoint {
	return &objstore.Checkpoint{
		Run:      m.run,
		Step:     m.step,
		Epoch:    m.Epoch(),
		GradsSeq: m.lastSeq,
		Weights:  append([]float32(nil), m.weights...),
		OptState: m.opt.MarshalState(),
		History:  append([]objstore.HistoryEntry(nil), m.history...),
		Partial:  m.part.marshal(),
	}
}
