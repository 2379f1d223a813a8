package coordinator

import (
	"bytes"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// An epoch's bar shows its steps done, its training loss so far and the
// samples a second; the next epoch starts a bar of its own.
func TestTheProgressBarShowsStepsLossAndSamplesPerSecond(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 4, 32)
	for step := uint64(1); step <= 4; step++ {
		p.step(step, 0.5/float64(step))
	}
	first := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`epoch 0 loss 0\.1250 [0-9]+ samples/s`), // the last step's figures, as the bar ends
		regexp.MustCompile(`\(4/4\)`),
	} {
		if !want.MatchString(first) {
			t.Fatalf("the first epoch's bar does not show %s:\n%q", want, first)
		}
	}
	p.step(5, 0.25)
	second := strings.TrimPrefix(out.String(), first)
	if !strings.Contains(second, "epoch 1 loss 0.2500") || !strings.Contains(second, "(1/4)") {
		t.Fatalf("the second epoch's bar does not show its first step:\n%q", second)
	}
}

// EpochSoFar is the training loss and accuracy over the epoch's committed
// steps: the epoch's history entry's figures once its last step is in.
func TestEpochSoFarIsTheEpochsTrainingFiguresSoFar(t *testing.T) {
	m := newTestMachine(t, nil)
	if loss, acc := m.EpochSoFar(); loss != 0 || acc != 0 {
		t.Fatalf("before any step: loss %v acc %v, want 0", loss, acc)
	}
	drive(t, m, rand.New(rand.NewPCG(1, 2)), 1)
	loss, acc := m.EpochSoFar()
	if loss <= 0 || acc <= 0 || acc >= 1 { // fakeGrad: a positive loss, about half the samples right
		t.Fatalf("after a step: loss %v acc %v", loss, acc)
	}
	drive(t, m, rand.New(rand.NewPCG(1, 2)), uint64(m.StepsPerEpoch()))
	loss, acc = m.EpochSoFar()
	h := m.History()
	if len(h) != 1 || loss != h[0].TrainLoss || acc != h[0].TrainAcc {
		t.Fatalf("at the epoch's end: loss %v acc %v, history %+v", loss, acc, h)
	}
}
