package model

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// program is one compiled gorgonia graph for one batch size: its tape machine and the
// buffers bound to its input nodes. Its weight nodes are views of the Network's weights
// buffer (Params); inputs and labels are set by copying into x and y, whose views the
// other input nodes are. Nothing is allocated per run.
type program struct {
	g      *G.ExprGraph
	tape   *tapeRunner
	batch  int
	x      []float32 // batch inputs, [batch, C*H*W]
	y      []float32 // labels as float32 class indices, [batch]
	logits *G.Node   // [batch, classes]
	grads  G.Nodes   // d(sum loss)/d param, in Layout order; nil for forward-only programs
	parts  Parts     // the values of grads after a run, as GradientParts returns them
}

// layoutFor lists the parameters of spec in their canonical order.
func layoutFor(spec Spec, input [3]int, classes int) Layout {
	var l Layout
	in := input[0] * input[1] * input[2]
	if spec.Kind == KindCNN {
		l = l.add("conv0.weight", cnnFilters, input[0], 3, 3)
		l = l.add("conv0.bias", cnnFilters)
		in = cnnFilters * (input[1] / 2) * (input[2] / 2)
	}
	for i, h := range spec.hidden() {
		l = l.add(fmt.Sprintf("dense%d.weight", i), in, h)
		l = l.add(fmt.Sprintf("dense%d.bias", i), h)
		in = h
	}
	n := len(spec.hidden())
	l = l.add(fmt.Sprintf("dense%d.weight", n), in, classes)
	l = l.add(fmt.Sprintf("dense%d.bias", n), classes)
	return l
}

// compile builds the graph of spec for batch samples. With train it also differentiates the
// summed loss with respect to every parameter.
func compile(spec Spec, layout Layout, flat []float32, input [3]int, classes, batch int, train bool) (p *program, err error) {
	defer func() { // gorgonia reports some shape errors by panicking
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("%w: building %s graph for batch %d: %v", ErrCompute, spec.Kind, batch, r)
		}
	}()
	g := G.NewGraph()
	p = &program{g: g, batch: batch}
	params := make(G.Nodes, len(layout))
	for i, prm := range layout {
		shape := prm.Shape
		t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(flat[prm.Offset:prm.Offset+prm.Size]))
		params[i] = G.NewTensor(g, G.Float32, len(shape), G.WithShape(shape...), G.WithName(prm.Name), G.WithValue(t))
	}
	c, h, w := input[0], input[1], input[2]
	p.x = make([]float32, batch*c*h*w)
	p.y = make([]float32, batch)
	labels := G.NewVector(g, G.Float32, G.WithShape(batch), G.WithName("y"),
		G.WithValue(tensor.New(tensor.WithShape(batch), tensor.WithBacking(p.y))))

	var act *G.Node
	next := 0
	if spec.Kind == KindCNN {
		x := G.NewTensor(g, G.Float32, 4, G.WithShape(batch, c, h, w), G.WithName("x"),
			G.WithValue(tensor.New(tensor.WithShape(batch, c, h, w), tensor.WithBacking(p.x))))
		act, err = G.ApplyOp(newConvPoolOp(c, h, w, cnnFilters), x, params[0], params[1])
		if err != nil {
			return nil, fmt.Errorf("%w: conv: %v", ErrCompute, err)
		}
		next = 2
	} else {
		act = G.NewMatrix(g, G.Float32, G.WithShape(batch, c*h*w), G.WithName("x"),
			G.WithValue(tensor.New(tensor.WithShape(batch, c*h*w), tensor.WithBacking(p.x))))
	}
	for ; next < len(params); next += 2 {
		act = G.Must(G.Mul(act, params[next]))
		hidden := next+2 < len(params)
		if act, err = G.ApplyOp(biasActOp{relu: hidden}, act, params[next+1]); err != nil {
			return nil, fmt.Errorf("%w: dense: %v", ErrCompute, err)
		}
	}
	p.logits = act
	cost, err := G.ApplyOp(xentOp{}, p.logits, labels)
	if err != nil {
		return nil, fmt.Errorf("%w: loss: %v", ErrCompute, err)
	}
	if train {
		if p.grads, err = G.Grad(cost, params...); err != nil {
			return nil, fmt.Errorf("%w: gradient: %v", ErrCompute, err)
		}
	}
	// Compile only what the outputs need: the full graph also holds gradients nobody reads
	// (such as the one with respect to the input batch, a whole extra matrix product).
	roots := append(G.Nodes{p.logits}, p.grads...)
	p.tape = newTapeRunner(G.NewTapeMachine(g.ExactSubgraphRoots(roots...)))
	return p, nil
}

// run executes the tape once on the network's weights and leaves logits (and gradients)
// in the graph's values.
func (p *program) run() error {
	if err := p.tape.run(); err != nil {
		return fmt.Errorf("%w: %v", ErrCompute, err)
	}
	return nil
}

// stats scores the logits of the last run against the labels in p.y.
func (p *program) stats(classes int) (Stats, error) {
	z, ok := p.logits.Value().Data().([]float32)
	if !ok || len(z) != p.batch*classes {
		return Stats{}, fmt.Errorf("%w: logits value", ErrCompute)
	}
	var s Stats
	for i, lab := range p.y {
		loss, hit := rowStats(z[i*classes:(i+1)*classes], int(lab))
		s.LossSum += loss
		if hit {
			s.Correct++
		}
	}
	s.Count = p.batch
	return s, nil
}

func (p *program) close() {
	if p.tape != nil {
		p.tape.vm.Close()
	}
}
