package model

import "math"

// adam is Adam with decoupled weight decay; m and v are the moment estimates.
type adam struct {
	spec OptimizerSpec
	m, v []float32
}

// adamStep is what one Adam step needs besides the vectors: every
// element's update is a function of these and of its own w, g, m and v.
// The vector code (adam_amd64.s) reads the fields by name (go_asm.h).
type adamStep struct {
	b1, a1, b2, a2, decay float32 // β1, 1-β1, β2, 1-β2, lr·weight decay
	c1, c2                float64 // the bias corrections 1/(1-β^t)
	lr, eps               float64
}

func (o *adam) Apply(params, grad []float32, step int64) {
	k := newAdamStep(o.spec, step)
	n := len(params)
	adamUpdate(params, grad[:n], o.m[:n], o.v[:n], &k)
}

func newAdamStep(s OptimizerSpec, step int64) adamStep {
	lr := s.LearningRate(step)
	t := float64(max(step, 0) + 1)
	return adamStep{
		b1: float32(s.Beta1), a1: float32(1 - s.Beta1),
		b2: float32(s.Beta2), a2: float32(1 - s.Beta2),
		decay: float32(lr * s.WeightDecay),
		c1:    1 / (1 - math.Pow(s.Beta1, t)), // math.Pow with an integral exponent multiplies exactly
		c2:    1 / (1 - math.Pow(s.Beta2, t)),
		lr:    lr, eps: s.Eps,
	}
}

// adamUpdateGo is the update of every element, one at a time. The vector
// code computes each element with the same IEEE operations in the same
// order, so both give the same bytes; this is the reference and the tail.
func adamUpdateGo(params, grad, m, v []float32, k *adamStep) {
	grad, m, v = grad[:len(params)], m[:len(params)], v[:len(params)]
	for i, w := range params {
		g := grad[i]
		// explicit conversions keep every product rounded (no fused multiply-add)
		m[i] = float32(k.b1*m[i]) + float32(k.a1*g)
		v[i] = float32(k.b2*v[i]) + float32(k.a2*float32(g*g))
		mh := float64(m[i]) * k.c1
		vh := float64(v[i]) * k.c2
		upd := float32(k.lr * mh / (math.Sqrt(vh) + k.eps))
		params[i] = w - upd - float32(k.decay*w)
	}
}

func (o *adam) MarshalState() []byte { return marshalState(2, o.m, o.v) }

func (o *adam) UnmarshalState(b []byte) error {
	m, v := make([]float32, len(o.m)), make([]float32, len(o.v))
	if err := unmarshalState(b, 2, m, v); err != nil {
		return err
	}
	o.m, o.v = m, v
	return nil
}
