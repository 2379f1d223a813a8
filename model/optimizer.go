package model

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/jettrain/jettrain/internal/f32le"
)

// Optimizer names and learning-rate schedules accepted by OptimizerSpec.
const (
	OptSGD  = "sgd"
	OptAdam = "adam"

	ScheduleConstant = "constant"
	ScheduleCosine   = "cosine"
	ScheduleStep     = "step"
)

// OptimizerSpec configures an update rule.
//
//   - "sgd": v ← Momentum·v + (g + WeightDecay·w); w ← w − lr·v (PyTorch's SGD, no dampening).
//   - "adam": m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; w ← w − lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + Eps)
//     − lr·WeightDecay·w (decoupled weight decay, as AdamW), with t = step+1.
//
// lr follows Schedule over TotalSteps steps after a linear warm-up of WarmupSteps steps:
// "constant" (or ""), "cosine" (LR·½(1+cos(π·p)), p the fraction of post-warm-up steps done)
// or "step" (×0.1 at half and again at three quarters of TotalSteps). With TotalSteps 0
// (unknown) every schedule is constant after warm-up.
type OptimizerSpec struct {
	Name        string
	LR          float64
	Momentum    float64 // sgd
	Beta1       float64 // adam
	Beta2       float64 // adam
	Eps         float64 // adam
	WeightDecay float64
	Schedule    string
	WarmupSteps int
	TotalSteps  int
}

// DefaultOptimizer returns the tested defaults for name ("sgd" or "adam"; anything else
// returns a spec that fails Validate). Adam at lr 1e-3 with global batch 128 (4 shards)
// takes the default MLP on Fashion-MNIST to 88.0–88.3% test accuracy by epoch 8–10 (87.8% at
// the last epoch for some seeds) and the CNN to 91.0% (TestFashionMNISTAccuracy).
func DefaultOptimizer(name string) OptimizerSpec {
	switch name {
	case OptSGD:
		return OptimizerSpec{Name: OptSGD, LR: 0.05, Momentum: 0.9, Schedule: ScheduleConstant}
	case OptAdam:
		return OptimizerSpec{Name: OptAdam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Schedule: ScheduleConstant}
	}
	return OptimizerSpec{Name: name}
}

func inRange(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v < hi }

// Validate reports the first field out of range.
func (s OptimizerSpec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrOptimizer, fmt.Sprintf(format, a...))
	}
	switch s.Name {
	case OptSGD:
		if !inRange(s.Momentum, 0, 1) {
			return bad("momentum %v, want [0,1)", s.Momentum)
		}
	case OptAdam:
		if !inRange(s.Beta1, 0, 1) {
			return bad("beta1 %v, want [0,1)", s.Beta1)
		}
		if !inRange(s.Beta2, 0, 1) {
			return bad("beta2 %v, want [0,1)", s.Beta2)
		}
		if !(s.Eps > 0 && s.Eps < 1) {
			return bad("eps %v, want (0,1)", s.Eps)
		}
	default:
		return bad("name %q, want %q or %q", s.Name, OptSGD, OptAdam)
	}
	if !(s.LR > 0 && s.LR <= 10) {
		return bad("lr %v, want (0,10]", s.LR)
	}
	if !inRange(s.WeightDecay, 0, 1) {
		return bad("weight decay %v, want [0,1)", s.WeightDecay)
	}
	switch s.Schedule {
	case "", ScheduleConstant, ScheduleCosine, ScheduleStep:
	default:
		return bad("schedule %q, want %q, %q or %q", s.Schedule, ScheduleConstant, ScheduleCosine, ScheduleStep)
	}
	if s.WarmupSteps < 0 || s.TotalSteps < 0 {
		return bad("warmup %d / total %d steps, want ≥ 0", s.WarmupSteps, s.TotalSteps)
	}
	return nil
}

// LearningRate is the learning rate of 0-based step, a pure function of the spec.
func (s OptimizerSpec) LearningRate(step int64) float64 {
	if step < 0 {
		step = 0
	}
	if w := int64(s.WarmupSteps); step < w {
		return s.LR * float64(step+1) / float64(w)
	}
	span := int64(s.TotalSteps - s.WarmupSteps)
	if s.TotalSteps == 0 || span <= 0 {
		return s.LR
	}
	p := min(float64(step-int64(s.WarmupSteps))/float64(span), 1)
	switch s.Schedule {
	case ScheduleCosine:
		return s.LR * 0.5 * (1 + math.Cos(math.Pi*p))
	case ScheduleStep:
		switch {
		case p >= 0.75:
			return s.LR * 0.01
		case p >= 0.5:
			return s.LR * 0.1
		}
	}
	return s.LR
}

// Optimizer updates weights in place. Implementations are deterministic: the result is a
// pure function of (weights, state, grad, step), and MarshalState is byte-for-byte stable.
type Optimizer interface {
	// Apply updates params with the MEAN gradient grad of 0-based global step step.
	Apply(params, grad []float32, step int64)
	// MarshalState encodes the optimizer's state (not its spec).
	MarshalState() []byte
	// UnmarshalState restores state written by MarshalState of the same kind and size; it
	// returns an ErrState error on anything else and leaves the state unchanged then.
	UnmarshalState(b []byte) error
}

// NewOptimizer returns a zero-state optimizer for n parameters.
func NewOptimizer(spec OptimizerSpec, n int) (Optimizer, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: %d parameters", ErrOptimizer, n)
	}
	switch spec.Name {
	case OptSGD:
		return &sgd{spec: spec, v: make([]float32, n)}, nil
	default:
		return &adam{spec: spec, m: make([]float32, n), v: make([]float32, n)}, nil
	}
}

// State encoding: "JTOS", version 1, kind byte (1 sgd, 2 adam), n as uint64 little-endian,
// then each state vector as n little-endian float32.
const (
	stateMagic   = "JTOS"
	stateVersion = 1
	stateHeader  = 4 + 1 + 1 + 8
)

func marshalState(kind byte, vecs ...[]float32) []byte {
	n := 0
	if len(vecs) > 0 {
		n = len(vecs[0])
	}
	b := make([]byte, stateHeader, stateHeader+4*n*len(vecs))
	copy(b, stateMagic)
	b[4], b[5] = stateVersion, kind
	binary.LittleEndian.PutUint64(b[6:], uint64(n))
	for _, v := range vecs {
		b = f32le.Append(b, v)
	}
	return b
}

func unmarshalState(b []byte, kind byte, vecs ...[]float32) error {
	if len(b) < stateHeader || string(b[:4]) != stateMagic {
		return fmt.Errorf("%w: %d bytes without the %q header", ErrState, len(b), stateMagic)
	}
	if b[4] != stateVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrState, b[4], stateVersion)
	}
	if b[5] != kind {
		return fmt.Errorf("%w: state of optimizer kind %d, want %d", ErrState, b[5], kind)
	}
	n := len(vecs[0])
	if got := binary.LittleEndian.Uint64(b[6:]); got != uint64(n) {
		return fmt.Errorf("%w: state for %d parameters, want %d", ErrState, got, n)
	}
	if want := stateHeader + 4*n*len(vecs); len(b) != want {
		return fmt.Errorf("%w: %d bytes, want %d", ErrState, len(b), want)
	}
	p := b[stateHeader:]
	for _, v := range vecs {
		f32le.Decode(v, p[:4*len(v)])
		p = p[4*len(v):]
	}
	return nil
}
