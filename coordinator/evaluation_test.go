package coordinator

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
)

// commitStep feeds m the current step's shards in order and returns what
// the last one made it do.
func commitStep(t *testing.T, m *Machine) Ready {
	t.Helper()
	var r Ready
	for _, task := range m.Tasks(m.allShards()) {
		var err error
		if r, err = m.Grad(fakeGrad(task, m.Weights()), m.Step()+1, time.Unix(0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if r.Commit == nil {
		t.Fatalf("step %d did not commit", m.Step())
	}
	return r
}

// weightEval's accuracy depends on the weights, so epochs differ and some,
// not all, are the best so far.
type weightEval struct{}

func (weightEval) Evaluate(w []float32) (model.Stats, error) {
	return model.Stats{LossSum: float64(w[1] * w[1]), Correct: int(math.Abs(float64(w[3]))*1e4) % 7, Count: 7}, nil
}

// TestEvaluatingLaterGivesTheSameCheckpoints drives two machines with the
// same gradients, one evaluating inside its commits and one handing the
// evaluations out and getting them back lag steps later (1000: only after
// the last step, every epoch's out at once). The second holds the
// checkpoints taken meanwhile — of those that will go out together, the
// newest and the epochs' ends — and releases them with the epochs'
// entries: the same checkpoints, byte for byte, and the same best epochs
// as the first's.
func TestEvaluatingLaterGivesTheSameCheckpoints(t *testing.T) {
	for _, lag := range []uint64{1, 3, 7, 1000} {
		t.Run(fmt.Sprintf("lag=%d", lag), func(t *testing.T) {
			cfg := testConfig()
			cfg.Epochs = 6
			cfg.CheckpointEvery = 2 // 5 steps an epoch: checkpoints at 2, 4, 5, 6, 8, 10, ...
			now, later := newMachineEval(t, cfg, weightEval{}, nil), newMachineEval(t, cfg, weightEval{}, nil)
			later.EvaluateLater()

			var want, got []*objstore.Checkpoint
			var wantBest, gotBest []int
			var out []*EvalRequest // handed out, not yet given back
			evaluate := func() {
				t.Helper()
				req := out[0]
				out = out[1:]
				st, _ := weightEval{}.Evaluate(req.Weights)
				if _, err := later.Evaluated(req.Epoch+1, st); err == nil {
					t.Fatal("Evaluated took the evaluation of an epoch that is not the next waiting")
				}
				rs, err := later.Evaluated(req.Epoch, st)
				if err != nil {
					t.Fatal(err)
				}
				if rs[0].Epoch == nil || rs[0].Epoch.Epoch != req.Epoch || rs[0].Checkpoint == nil || rs[0].Checkpoint.Step != req.Step {
					t.Fatalf("evaluation of epoch %d released %+v first, want the epoch's entry with its checkpoint", req.Epoch, rs[0])
				}
				if rs[0].Best {
					gotBest = append(gotBest, req.Epoch)
				}
				for i, r := range rs {
					if i > 0 && (r.Epoch != nil || r.Best) {
						t.Fatalf("evaluation of epoch %d released a second entry or best flag: %+v", req.Epoch, r)
					}
					if r.Checkpoint != nil {
						got = append(got, r.Checkpoint)
					}
				}
			}
			for !now.Done() {
				a, b := commitStep(t, now), commitStep(t, later)
				if a.Checkpoint != nil {
					want = append(want, a.Checkpoint)
				}
				if a.Best {
					wantBest = append(wantBest, a.Epoch.Epoch)
				}
				if b.Epoch != nil {
					t.Fatalf("step %d: an epoch's entry out of a commit of a machine that evaluates later", later.Step())
				}
				if (b.Evaluate != nil) != (a.Epoch != nil) {
					t.Fatalf("step %d: evaluation handed out %v, the other machine ended an epoch %v", later.Step(), b.Evaluate != nil, a.Epoch != nil)
				}
				if b.Evaluate != nil {
					if !reflect.DeepEqual(b.Evaluate.Weights, now.Weights()) || &b.Evaluate.Weights[0] == &later.Weights()[0] {
						t.Fatalf("step %d: the evaluation was handed out without its own copy of the weights", later.Step())
					}
					out = append(out, b.Evaluate)
				}
				if b.Checkpoint != nil {
					if len(out) > 0 {
						t.Fatalf("step %d: a checkpoint went out while the evaluation of epoch %d was out", later.Step(), out[0].Epoch)
					}
					got = append(got, b.Checkpoint)
				}
				// Each evaluation out holds its epoch's end checkpoint and
				// at most the newest one taken after it in the next epoch.
				if len(later.held) > 2*len(out) {
					var steps []uint64
					for _, ck := range later.held {
						steps = append(steps, ck.Step)
					}
					t.Fatalf("step %d: checkpoints at steps %v held with %d evaluations out; want an epoch's end and the newest after it for each at most", later.Step(), steps, len(out))
				}
				for len(out) > 0 && later.Step() >= out[0].Step+lag {
					evaluate()
				}
			}
			if !later.Done() || !later.Evaluating() || len(out) == 0 {
				t.Fatalf("at the end: done %v, evaluating %v, %d evaluations out; want the last one out at least", later.Done(), later.Evaluating(), len(out))
			}
			for len(out) > 0 {
				evaluate()
			}
			if later.Evaluating() {
				t.Fatal("still evaluating after every evaluation came back")
			}
			checkReleased(t, got, want, uint64(later.StepsPerEpoch()))
			if !reflect.DeepEqual(later.History(), now.History()) {
				t.Fatalf("history %+v, evaluating at once %+v", later.History(), now.History())
			}
			if !reflect.DeepEqual(gotBest, wantBest) || len(wantBest) < 2 || len(wantBest) == cfg.Epochs {
				t.Fatalf("best epochs %v, evaluating at once %v; want the same, some but not all epochs", gotBest, wantBest)
			}
		})
	}
}

// checkReleased checks that the checkpoints a machine evaluating later
// released (got) are those of one evaluating at once (want), byte for
// byte, but for those it let go while held: none that ends an epoch, and
// only ones with a newer one released at the same time (the same number
// of epochs ended before them) after them.
func checkReleased(t *testing.T, got, want []*objstore.Checkpoint, spe uint64) {
	t.Helper()
	var steps []uint64
	for _, ck := range got {
		steps = append(steps, ck.Step)
	}
	i := 0
	for _, w := range want {
		if i < len(got) && got[i].Step == w.Step {
			if !reflect.DeepEqual(got[i], w) {
				t.Fatalf("the checkpoint at step %d differs from the one evaluating at once", w.Step)
			}
			i++
			continue
		}
		if w.Step%spe == 0 || i == len(got) || got[i].Step/spe != w.Step/spe {
			t.Fatalf("checkpoints at steps %v: the one at step %d is missing, and no newer one of its epoch went out with it", steps, w.Step)
		}
	}
	if i != len(got) {
		t.Fatalf("checkpoints at steps %v: the one at step %d was not taken evaluating at once", steps, got[i].Step)
	}
}
