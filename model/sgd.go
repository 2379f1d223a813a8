package model

// sgd is SGD with momentum and L2 weight decay; v is the momentum buffer.
type sgd struct {
	spec OptimizerSpec
	v    []float32
}

func (o *sgd) Apply(params, grad []float32, step int64) {
	lr := float32(o.spec.LearningRate(step))
	mu, wd := float32(o.spec.Momentum), float32(o.spec.WeightDecay)
	v := o.v[:len(params)]
	grad = grad[:len(params)]
	for i, w := range params {
		// explicit float32() conversions keep every product rounded (no fused multiply-add)
		g := grad[i] + float32(wd*w)
		v[i] = float32(mu*v[i]) + g
		params[i] = w - float32(lr*v[i])
	}
}

func (o *sgd) MarshalState() []byte { return marshalState(1, o.v) }

func (o *sgd) UnmarshalState(b []byte) error {
	v := make([]float32, len(o.v))
	if err := unmarshalState(b, 1, v); err != nil {
		return err
	}
	o.v = v
	return nil
}
