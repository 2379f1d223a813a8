package model

import "math"

// adam is Adam with decoupled weight decay; m and v are the moment estimates.
type adam struct {
	spec OptimizerSpec
	m, v []float32
}

func (o *adam) Apply(params, grad []float32, step int64) {
	s := o.spec
	lr := s.LearningRate(step)
	t := float64(max(step, 0) + 1)
	c1 := 1 / (1 - math.Pow(s.Beta1, t)) // math.Pow with an integral exponent multiplies exactly
	c2 := 1 / (1 - math.Pow(s.Beta2, t))
	b1, b2 := float32(s.Beta1), float32(s.Beta2)
	a1, a2 := float32(1-s.Beta1), float32(1-s.Beta2)
	decay := float32(lr * s.WeightDecay)
	m, v := o.m[:len(params)], o.v[:len(params)]
	grad = grad[:len(params)]
	for i, w := range params {
		g := grad[i]
		// explicit conversions keep every product rounded (no fused multiply-add)
		m[i] = float32(b1*m[i]) + float32(a1*g)
		v[i] = float32(b2*v[i]) + float32(a2*float32(g*g))
		mh := float64(m[i]) * c1
		vh := float64(v[i]) * c2
		upd := float32(lr * mh / (math.Sqrt(vh) + s.Eps))
		params[i] = w - upd - float32(decay*w)
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
