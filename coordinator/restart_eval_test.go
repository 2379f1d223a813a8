package coordinator

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
)

// TestAStopWhileAnEvaluationIsOutLosesNothing stops a coordinator while
// the evaluation of the first epoch is out — computed, but held back from
// the node — a few steps past that epoch's end. The checkpoint of the
// epoch's end must not have been saved without the epoch's history
// entry, and the next coordinator must end the run with the weights and
// the history of a run never stopped: one entry per epoch.
func TestAStopWhileAnEvaluationIsOutLosesNothing(t *testing.T) {
	cfg := smallConfig(t, "checkpoint_every=4")
	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	spe := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize))
	ref := runToTheEnd(t, cfg)

	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	p := newPool(t, srv.ClientURL())
	p.add(2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := make(chan struct{})
	var stopped atomic.Bool
	var savedPast atomic.Uint64 // a checkpoint at or past the epoch's end, saved while its evaluation was out
	_, err = Train(ctx, nc, st, Options{Config: cfg, Log: quietLog(), Hooks: Hooks{
		Evaluated: func(epoch int) {
			if epoch == 0 {
				<-release // the evaluation stays out
			}
		},
		Committed: func(step uint64, _ [8]byte) {
			if step == spe+3 && !stopped.Swap(true) {
				cancel()
				close(release)
			}
		},
		Saved: func(step uint64) {
			if step >= spe {
				savedPast.Store(step)
			}
		},
	}})
	if err == nil {
		t.Fatal("the stopped run reported success")
	}
	if !stopped.Load() {
		t.Fatalf("the run stopped before step %d: %v", spe+3, err)
	}
	if s := savedPast.Load(); s != 0 {
		t.Fatalf("the checkpoint at step %d was saved while the evaluation of epoch 0 (ending at step %d) was out", s, spe)
	}
	res, err := train(t, context.Background(), nc, st, cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != ref.Digest {
		t.Fatalf("weights %x, want the unstopped run's %x", res.Digest, ref.Digest)
	}
	if got, want := historyMath(res.History), historyMath(ref.History); got != want {
		t.Fatalf("history\n%s\nwant the unstopped run's\n%s", got, want)
	}
}

// historyMath prints the entries of a history without their timings.
func historyMath(h []objstore.HistoryEntry) string {
	var s string
	for _, e := range h {
		s += fmt.Sprintf("epoch %d step %d train %v/%v valid %v/%v best %v\n", e.Epoch, e.Step, e.TrainLoss, e.TrainAcc, e.ValidLoss, e.ValidAcc, e.Best)
	}
	return s
}
