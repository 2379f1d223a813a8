package model

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// xentOp is a fused softmax cross-entropy gorgonia op: given logits [B,K] and labels [B]
// (class indices stored as float32) it returns the scalar SUM over the batch of
// -log softmax(logits)[label]. Fusing keeps it numerically stable (max-shifted, float64
// accumulation), lets the backward pass be the closed form softmax − onehot, and avoids the
// one-hot tensor and the five generic ops the unfused expression would need.
type xentOp struct{}

func (xentOp) Arity() int { return 2 }
func (xentOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 1, Of: a}, a)
}
func (xentOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.ScalarShape(), nil }
func (xentOp) ReturnsPtr() bool                               { return false }
func (xentOp) CallsExtern() bool                              { return false }
func (xentOp) OverwritesInput() int                           { return -1 }
func (xentOp) WriteHash(h hash.Hash)                          { fmt.Fprint(h, "jettrain.SoftmaxXent") }
func (xentOp) Hashcode() uint32                               { return 0x6a787431 }
func (xentOp) String() string                                 { return "SoftmaxXent" }
func (xentOp) DiffWRT(int) []bool                             { return []bool{true, false} }

func (op xentOp) Do(in ...G.Value) (G.Value, error) {
	var out G.F32
	return op.UsePreallocDo(&out, in...)
}

func (xentOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	logits, labels, err := xentInputs(in)
	if err != nil {
		return nil, err
	}
	k := len(logits) / len(labels)
	var sum float64
	for i, lab := range labels {
		sum += rowLoss(logits[i*k:(i+1)*k], int(lab))
	}
	out, ok := prealloc.(*G.F32)
	if !ok {
		return nil, fmt.Errorf("%w: xent output is %T", ErrCompute, prealloc)
	}
	*out = G.F32(sum)
	return out, nil
}

func (op xentOp) SymDiff(inputs G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := G.ApplyOp(xentGradOp{}, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{d, nil}, nil
}

// xentGradOp computes d(sum loss)/d logits = g·(softmax(logits) − onehot(labels)).
type xentGradOp struct{}

func (xentGradOp) Arity() int { return 3 }
func (xentGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	m := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(m, G.TensorType{Dims: 1, Of: a}, a, m)
}
func (xentGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	s, ok := in[0].(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("%w: xent grad input shape %T", ErrCompute, in[0])
	}
	return s.Clone(), nil
}
func (xentGradOp) ReturnsPtr() bool      { return false }
func (xentGradOp) CallsExtern() bool     { return false }
func (xentGradOp) OverwritesInput() int  { return -1 }
func (xentGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "jettrain.SoftmaxXentGrad") }
func (xentGradOp) Hashcode() uint32      { return 0x6a787432 }
func (xentGradOp) String() string        { return "SoftmaxXentGrad" }

func (op xentGradOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(tensor.Tensor)
	if !ok {
		return nil, fmt.Errorf("%w: xent grad input %T", ErrCompute, in[0])
	}
	out := tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.Of(tensor.Float32))
	return op.UsePreallocDo(out, in...)
}

func (xentGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%w: xent grad wants 3 inputs, got %d", ErrCompute, len(in))
	}
	logits, labels, err := xentInputs(in[:2])
	if err != nil {
		return nil, err
	}
	g, err := scalar32(in[2])
	if err != nil {
		return nil, err
	}
	out, ok := prealloc.Data().([]float32)
	if !ok || len(out) != len(logits) {
		return nil, fmt.Errorf("%w: xent grad output", ErrCompute)
	}
	k := len(logits) / len(labels)
	for i, lab := range labels {
		rowGrad(logits[i*k:(i+1)*k], int(lab), g, out[i*k:(i+1)*k])
	}
	return prealloc, nil
}

func xentInputs(in []G.Value) (logits, labels []float32, err error) {
	if len(in) != 2 {
		return nil, nil, fmt.Errorf("%w: xent wants 2 inputs, got %d", ErrCompute, len(in))
	}
	logits, ok1 := in[0].Data().([]float32)
	labels, ok2 := in[1].Data().([]float32)
	if !ok1 || !ok2 || len(labels) == 0 || len(logits)%len(labels) != 0 {
		return nil, nil, fmt.Errorf("%w: xent inputs %T %T", ErrCompute, in[0], in[1])
	}
	return logits, labels, nil
}

func scalar32(v G.Value) (float32, error) {
	switch d := v.Data().(type) {
	case float32:
		return d, nil
	case []float32:
		if len(d) == 1 {
			return d[0], nil
		}
	}
	return 0, fmt.Errorf("%w: want a float32 scalar, got %T", ErrCompute, v)
}

// softmaxSum returns the largest of z and the sum, in float64 and in z's
// order, of exp(v − max) over z: softmax's denominator with the max
// shifted out, the start of both rowLoss and rowGrad.
func softmaxSum(z []float32) (m float32, s float64) {
	m = z[0]
	for _, v := range z[1:] {
		m = max(m, v)
	}
	for _, v := range z {
		s += exp64(float64(v - m))
	}
	return m, s
}

// rowLoss is -log softmax(z)[y] computed in float64 with the max shifted out.
func rowLoss(z []float32, y int) float64 {
	m, s := softmaxSum(z)
	return math.Log(s) - float64(z[y]-m)
}

// rowGrad writes g·(softmax(z) − onehot(y)) into out.
func rowGrad(z []float32, y int, g float32, out []float32) {
	m, s := softmaxSum(z)
	inv := 1 / s
	for i, v := range z {
		p := exp64(float64(v-m)) * inv
		if i == y {
			p -= 1
		}
		out[i] = g * float32(p)
	}
}

// rowStats returns the loss and whether argmax(z) (lowest index on ties) equals y.
func rowStats(z []float32, y int) (float64, bool) {
	best := 0
	for i, v := range z {
		if v > z[best] {
			best = i
		}
	}
	return rowLoss(z, y), best == y
}

// exp64 is e**x computed by the portable algorithm of Go's math.Exp (FreeBSD's e_exp.c),
// with every product rounded explicitly. math.Exp itself switches to an FMA assembly path
// on CPUs that have it, which would make results depend on the machine.
func exp64(x float64) float64 {
	const (
		ln2Hi     = 6.93147180369123816490e-01
		ln2Lo     = 1.90821492927058770002e-10
		log2e     = 1.44269504088896338700e+00
		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28)
		p1        = 1.66666666666666657415e-01
		p2        = -2.77777777770155933842e-03
		p3        = 6.61375632143793436117e-05
		p4        = -1.65339022054652515390e-06
		p5        = 4.13813679705723846039e-08
	)
	switch {
	case math.IsNaN(x) || math.IsInf(x, 1):
		return x
	case math.IsInf(x, -1):
		return 0
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	r := hi - lo
	t := float64(r * r)
	c := r - float64(t*(p1+float64(t*(p2+float64(t*(p3+float64(t*(p4+float64(t*p5)))))))))
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return math.Ldexp(y, k)
}
