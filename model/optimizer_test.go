package model

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(seed uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(seed, 9))
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func optimizerSpecs() []OptimizerSpec {
	sgd, adam := DefaultOptimizer(OptSGD), DefaultOptimizer(OptAdam)
	sgdWD := sgd
	sgdWD.WeightDecay, sgdWD.Schedule, sgdWD.TotalSteps = 1e-4, ScheduleStep, 10
	adamW := adam
	adamW.WeightDecay, adamW.Schedule, adamW.WarmupSteps, adamW.TotalSteps = 0.01, ScheduleCosine, 2, 10
	return []OptimizerSpec{sgd, sgdWD, adam, adamW}
}

// TestOptimizerDeterministicAndRoundTrip: Apply is a pure function of (weights, state, grad,
// step); state survives Marshal/Unmarshal byte for byte mid-run, so a resumed run continues
// bit-identically.
func TestOptimizerDeterministicAndRoundTrip(t *testing.T) {
	const n = 1000
	for _, spec := range optimizerSpecs() {
		run := func(resumeAt int) ([]float32, []byte) {
			w := randVec(1, n)
			o, err := NewOptimizer(spec, n)
			if err != nil {
				t.Fatal(err)
			}
			for step := 0; step < 10; step++ {
				if step == resumeAt {
					st := o.MarshalState()
					o2, _ := NewOptimizer(spec, n)
					if err := o2.UnmarshalState(st); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(o2.MarshalState(), st) {
						t.Fatal("state does not round-trip")
					}
					o = o2
				}
				o.Apply(w, randVec(uint64(100+step), n), int64(step))
			}
			return w, o.MarshalState()
		}
		w1, s1 := run(-1)
		w2, s2 := run(5)
		w3, s3 := run(-1)
		if Digest(w1) != Digest(w2) || Digest(w1) != Digest(w3) || !bytes.Equal(s1, s2) || !bytes.Equal(s1, s3) {
			t.Errorf("%+v: runs differ", spec)
		}
		if Digest(w1) == Digest(randVec(1, n)) {
			t.Errorf("%+v: weights did not move", spec)
		}
	}
}

func TestOptimizerStateErrors(t *testing.T) {
	sgd, _ := NewOptimizer(DefaultOptimizer(OptSGD), 4)
	adam, _ := NewOptimizer(DefaultOptimizer(OptAdam), 4)
	adam5, _ := NewOptimizer(DefaultOptimizer(OptAdam), 5)
	good := adam.MarshalState()
	bad := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XXXX"), good[4:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"kind":      sgd.MarshalState(),
		"size":      adam5.MarshalState(),
	}
	for _, name := range []string{"empty", "magic", "truncated", "trailing", "kind", "size"} {
		if err := adam.UnmarshalState(bad[name]); !errors.Is(err, ErrState) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !bytes.Equal(adam.MarshalState(), good) {
		t.Error("failed Unmarshal changed the state")
	}
}

func TestOptimizerValidate(t *testing.T) {
	for _, spec := range optimizerSpecs() {
		if err := spec.Validate(); err != nil {
			t.Errorf("%+v: %v", spec, err)
		}
	}
	bad := []OptimizerSpec{
		{Name: "rmsprop", LR: 1},
		{Name: OptSGD, LR: 0},
		{Name: OptSGD, LR: math.NaN()},
		{Name: OptSGD, LR: 0.1, Momentum: 1},
		{Name: OptAdam, LR: 0.1, Beta1: 0.9, Beta2: 0.999},
		{Name: OptSGD, LR: 0.1, Schedule: "linear"},
		{Name: OptSGD, LR: 0.1, WarmupSteps: -1},
		{Name: OptSGD, LR: 0.1, WeightDecay: -1},
	}
	for _, spec := range bad {
		if err := spec.Validate(); !errors.Is(err, ErrOptimizer) {
			t.Errorf("%+v: %v", spec, err)
		}
		if _, err := NewOptimizer(spec, 1); !errors.Is(err, ErrOptimizer) {
			t.Errorf("NewOptimizer %+v: %v", spec, err)
		}
	}
}

func TestLearningRate(t *testing.T) {
	s := OptimizerSpec{Name: OptSGD, LR: 1, Schedule: ScheduleCosine, WarmupSteps: 4, TotalSteps: 14}
	want := map[int64]float64{0: 0.25, 3: 1, 4: 1, 9: 0.5, 14: 0, 100: 0}
	for _, step := range []int64{0, 3, 4, 9, 14, 100} {
		if got := s.LearningRate(step); math.Abs(got-want[step]) > 1e-12 {
			t.Errorf("cosine step %d: %v, want %v", step, got, want[step])
		}
	}
	s = OptimizerSpec{Name: OptSGD, LR: 1, Schedule: ScheduleStep, TotalSteps: 100}
	if s.LearningRate(49) != 1 || s.LearningRate(50) != 0.1 || s.LearningRate(75) != 0.01 {
		t.Errorf("step schedule: %v %v %v", s.LearningRate(49), s.LearningRate(50), s.LearningRate(75))
	}
	s.TotalSteps = 0
	if s.LearningRate(1000) != 1 {
		t.Error("unknown total steps must be constant")
	}
}
