package coordinator

import (
	"fmt"
	"time"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
)

// An epoch's evaluation on the test set is the longest piece of the
// coordinator's work (150-250 ms for the default run on two cores, seconds
// for larger models or test sets). The commit that ends an epoch hands it
// out as an EvalRequest; a machine evaluates it at once (EvaluateNow)
// unless told to EvaluateLater, and then hands it out as work instead:
// the commit returns an EvalRequest with a copy of the weights, the caller
// evaluates them when and how it likes, and Evaluated completes the
// epoch's history entry. Meanwhile the machine commits on. Every checkpoint
// it takes while an evaluation is out is held back, and goes out once the
// history entries it must hold are in, so a checkpoint's bytes never
// depend on how long an evaluation took. Evaluations are completed in
// epoch order.

// EvalRequest is an epoch's evaluation handed out as work.
type EvalRequest struct {
	Epoch   int       // the epoch that ended
	Step    uint64    // the step that ended it
	Weights []float32 // the weights after that step (owned by the request)
}

// EvaluateLater makes the machine hand epochs' evaluations out
// (Ready.Evaluate) instead of running its Evaluator inside the commit.
func (m *Machine) EvaluateLater() { m.evalLater = true }

// Evaluating reports whether an evaluation handed out is not completed yet.
func (m *Machine) Evaluating() bool { return len(m.pending) > 0 }

// Evaluated completes the oldest ended epoch with its evaluation st. It
// returns what that releases, in order: the epoch's entry (Ready.Epoch,
// with Best) and the checkpoints that were waiting for it, each in a
// Ready of its own.
func (m *Machine) Evaluated(epoch int, st model.Stats) ([]Ready, error) {
	if len(m.pending) == 0 || m.pending[0].Epoch != epoch {
		return nil, fmt.Errorf("coordinator: evaluation of epoch %d, which is not the next one waiting for it", epoch)
	}
	e, best := m.addEntry(m.pending[0], st)
	m.pending = m.pending[1:]
	out := []Ready{{Epoch: e, Best: best}}
	kept := m.held[:0]
	for _, ck := range m.held {
		ck.History = append(ck.History, *e)
		if uint64(len(ck.History)) < ck.Step/uint64(m.stepsPerEpoch) {
			kept = append(kept, ck) // an epoch after this one is not evaluated yet
			continue
		}
		if ck.Step == e.Step && out[0].Checkpoint == nil {
			out[0].Checkpoint = ck
		} else {
			out = append(out, Ready{Checkpoint: ck})
		}
	}
	clear(m.held[len(kept):])
	m.held = kept
	return out, nil
}

// hold keeps ck until the evaluations it waits for are in. It replaces the
// checkpoint held before it if that one would go out at the same time and
// does not end an epoch: of checkpoints released together at most the
// first (an epoch's end) and the newest are saved (the saver lets those
// waiting in between go), so holding the others would only cost memory —
// a full copy of the weights and the optimizer's state each, while a slow
// evaluation is out. Epochs' end checkpoints are kept:
// each goes out with its epoch's entry, and with the epoch's best weights.
func (m *Machine) hold(ck *objstore.Checkpoint) {
	if n := len(m.held); n > 0 {
		prev := m.held[n-1]
		spe := uint64(m.stepsPerEpoch)
		if prev.Step%spe != 0 && prev.Step/spe == ck.Step/spe {
			m.held[n-1] = ck
			return
		}
	}
	m.held = append(m.held, ck)
}

// EvaluateNow runs the machine's Evaluator on r, handed out by its commit,
// and completes the epoch with it (Evaluated). A machine that does not
// EvaluateLater does so inside the commit; a local loop driving a node's
// machine (recompute) does so at once.
func (m *Machine) EvaluateNow(r *EvalRequest) ([]Ready, error) {
	st, err := m.eval.Evaluate(r.Weights)
	if err != nil {
		return nil, fmt.Errorf("coordinator: evaluating epoch %d: %w", r.Epoch, err)
	}
	return m.Evaluated(r.Epoch, st)
}

// endEpoch closes the epoch that the step just committed ended: its
// training statistics and duration, measured to now.
func (m *Machine) endEpoch(now time.Time) objstore.HistoryEntry {
	d := time.Duration(now.UnixNano() - m.part.EpochStart).Seconds()
	e := objstore.HistoryEntry{
		Epoch:     m.Epoch() - 1,
		Step:      m.step,
		TrainLoss: m.part.LossSum / float64(m.part.Count),
		TrainAcc:  float64(m.part.Correct) / float64(m.part.Count),
	}
	if d > 0 {
		e.DurationS = d
		e.SamplesPerS = float64(m.part.Count) / d
	}
	m.ended = m.part
	m.part = partial{EpochStart: now.UnixNano()}
	return e
}

// addEntry completes e with the evaluation st and appends it to the
// history; best reports that it has the best validation accuracy so far.
func (m *Machine) addEntry(e objstore.HistoryEntry, st model.Stats) (*objstore.HistoryEntry, bool) {
	if st.Count > 0 {
		e.ValidLoss = st.LossSum / float64(st.Count)
		e.ValidAcc = float64(st.Correct) / float64(st.Count)
	}
	best := true
	for _, h := range m.history {
		if h.ValidAcc >= e.ValidAcc {
			best = false
		}
	}
	e.Best = best
	m.history = append(m.history, e)
	return &m.history[len(m.history)-1], best
}
