package model

import (
	"fmt"
)

// evalChunk is the largest batch Evaluate runs through the forward graph at once.
const evalChunk = 500

// Stats scores a batch: the softmax cross-entropy summed over samples, the number of
// samples whose arg-max logit (lowest index on ties) is the label, and the sample count.
// Stats of disjoint batches add up field by field.
type Stats struct {
	LossSum float64
	Correct int
	Count   int
}

// Add returns the field-wise sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{LossSum: s.LossSum + o.LossSum, Correct: s.Correct + o.Correct, Count: s.Count + o.Count}
}

// Loss is the mean loss per sample (0 for an empty batch).
func (s Stats) Loss() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.LossSum / float64(s.Count)
}

// Accuracy is the fraction of samples classified correctly (0 for an empty batch).
func (s Stats) Accuracy() float64 {
	if s.Count == 0 {
		return 0
	}
	return float64(s.Correct) / float64(s.Count)
}

// Network computes losses and gradients of one Spec with gorgonia. It compiles one graph
// per batch size on first use and reuses it (graph, tape machine and buffers) afterwards.
// A Network is not safe for concurrent use; create one per goroutine. Networks share no
// state, and the same inputs give the same bytes in every Network of the same Spec.
type Network struct {
	spec    Spec
	input   [3]int
	classes int
	layout  Layout
	flat    []float32        // the weights every program computes on (their weight nodes view it)
	zeros   []float32        // the gradient of an empty batch, made on first use
	train   map[int]*program // by batch size; looked up, never iterated
	eval    map[int]*program
	order   []*program // every compiled program, for Close
}

// New returns a Network for spec over inputs of shape [channels, height, width] with
// classes outputs. Graphs are compiled lazily.
func New(spec Spec, input [3]int, classes int) (*Network, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	for _, d := range input {
		if d <= 0 || d > 4096 {
			return nil, fmt.Errorf("%w: input shape %v", ErrSpec, input)
		}
	}
	if classes < 2 || classes > 256 {
		return nil, fmt.Errorf("%w: %d classes (want 2..256)", ErrSpec, classes)
	}
	if spec.Kind == KindCNN && (input[1] < 2 || input[2] < 2) {
		return nil, fmt.Errorf("%w: cnn input %v smaller than its 2x2 pooling", ErrSpec, input)
	}
	layout := layoutFor(spec, input, classes)
	return &Network{
		spec: spec, input: input, classes: classes,
		layout: layout,
		flat:   make([]float32, layout.Size()),
		train:  map[int]*program{},
		eval:   map[int]*program{},
	}, nil
}

// Spec is the network's description.
func (n *Network) Spec() Spec { return n.spec }

// Params is the network's own weights buffer (Layout order), which Gradient
// and Evaluate copy the weights they are given into. A caller that keeps its
// weights there, and updates them in place, spares that copy of every
// weight on every call (for the default MLP, 800 KB per shard). It is the
// network's for its whole life; Close does not release it.
func (n *Network) Params() []float32 { return n.flat }

// Layout is the canonical order of the parameters in the flat vector.
func (n *Network) Layout() Layout { return n.layout }

// sampleSize is C*H*W.
func (n *Network) sampleSize() int { return n.input[0] * n.input[1] * n.input[2] }

func (n *Network) program(batch int, train bool) (*program, error) {
	cache := n.eval
	if train {
		cache = n.train
	}
	if p, ok := cache[batch]; ok {
		return p, nil
	}
	p, err := compile(n.spec, n.layout, n.flat, n.input, n.classes, batch, train)
	if err != nil {
		return nil, err
	}
	cache[batch] = p
	n.order = append(n.order, p)
	return p, nil
}

// check validates lengths and labels of a batch.
func (n *Network) check(params, x []float32, y []uint8) error {
	if len(params) != n.layout.Size() {
		return fmt.Errorf("%w: %d parameters, network has %d", ErrShape, len(params), n.layout.Size())
	}
	if len(x) != len(y)*n.sampleSize() {
		return fmt.Errorf("%w: %d input values for %d labels of %d values each", ErrShape, len(x), len(y), n.sampleSize())
	}
	for i, lab := range y {
		if int(lab) >= n.classes {
			return fmt.Errorf("%w: label %d of sample %d (classes %d)", ErrLabel, lab, i, n.classes)
		}
	}
	return nil
}

// load copies a batch into a program's input buffers.
func (p *program) load(x []float32, y []uint8) {
	copy(p.x, x)
	for i, lab := range y {
		p.y[i] = float32(lab)
	}
}

// Gradient overwrites grad (len Layout().Size()) with the gradient of the SUM of per-sample
// losses over the batch x (len(y)*C*H*W values) with labels y, and returns its Stats. An
// empty batch gives a zero gradient and zero Stats. Gradients never accumulate across calls.
func (n *Network) Gradient(params, x []float32, y []uint8, grad []float32) (Stats, error) {
	if len(grad) != len(params) {
		return Stats{}, fmt.Errorf("%w: gradient buffer %d, network has %d", ErrShape, len(grad), len(params))
	}
	parts, st, err := n.GradientParts(params, x, y)
	if err != nil {
		return Stats{}, err
	}
	parts.CopyTo(grad)
	return st, nil
}

// GradientParts is Gradient without the copy into one buffer: it returns the
// gradient as one piece per parameter, in Layout order, held in the
// network's own buffers. They are valid until the network's next Gradient,
// GradientParts or Evaluate; the caller must not modify them.
func (n *Network) GradientParts(params, x []float32, y []uint8) (Parts, Stats, error) {
	if err := n.check(params, x, y); err != nil {
		return nil, Stats{}, err
	}
	if len(y) == 0 {
		if n.zeros == nil {
			n.zeros = make([]float32, n.layout.Size())
		}
		return Parts{n.zeros}, Stats{}, nil
	}
	p, err := n.program(len(y), true)
	if err != nil {
		return nil, Stats{}, err
	}
	n.setParams(params)
	p.load(x, y)
	if err := p.run(); err != nil {
		return nil, Stats{}, err
	}
	if p.parts == nil {
		p.parts = make(Parts, len(n.layout))
	}
	for i, prm := range n.layout {
		d, ok := p.grads[i].Value().Data().([]float32)
		if !ok || len(d) != prm.Size {
			return nil, Stats{}, fmt.Errorf("%w: gradient of %s", ErrCompute, prm.Name)
		}
		p.parts[i] = d
	}
	st, err := p.stats(n.classes)
	if err != nil {
		return nil, Stats{}, err
	}
	return p.parts, st, nil
}

// Evaluate runs the forward pass over x in chunks of at most 500 samples and returns the
// summed Stats. Any number of samples is fine.
func (n *Network) Evaluate(params, x []float32, y []uint8) (Stats, error) {
	return n.EvaluateWith(params, x, y, nil)
}

// EvaluateWith is Evaluate calling between, if not nil, after each chunk
// of the samples but the last: a caller that evaluates in the background
// can pace itself there, and stop the evaluation by returning an error,
// which EvaluateWith returns. The result is Evaluate's, bit for bit.
func (n *Network) EvaluateWith(params, x []float32, y []uint8, between func() error) (Stats, error) {
	if err := n.check(params, x, y); err != nil {
		return Stats{}, err
	}
	n.setParams(params)
	var total Stats
	ss := n.sampleSize()
	for lo := 0; lo < len(y); lo += evalChunk {
		hi := min(lo+evalChunk, len(y))
		p, err := n.program(hi-lo, false)
		if err != nil {
			return Stats{}, err
		}
		p.load(x[lo*ss:hi*ss], y[lo:hi])
		if err := p.run(); err != nil {
			return Stats{}, err
		}
		st, err := p.stats(n.classes)
		if err != nil {
			return Stats{}, err
		}
		total = total.Add(st)
		if between != nil && hi < len(y) {
			if err := between(); err != nil {
				return Stats{}, err
			}
		}
	}
	return total, nil
}

// setParams puts params in the weights buffer the programs compute on,
// unless they are that buffer already.
func (n *Network) setParams(params []float32) {
	if len(params) > 0 && &params[0] != &n.flat[0] {
		copy(n.flat, params)
	}
}

// Close releases the compiled graphs. The Network can still be used; graphs are rebuilt.
func (n *Network) Close() {
	for _, p := range n.order {
		p.close()
	}
	n.order = nil
	clear(n.train)
	clear(n.eval)
}
