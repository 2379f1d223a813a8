package model

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Fused element-wise gorgonia ops for the dense layers. gorgonia's BroadcastAdd materializes
// the bias as a [batch, n] tensor (a Repeat op) and Rectify is a comparison plus a product,
// each with its own pass, allocation and backward ops; these do the same math in one pass.

// biasActOp computes act(z + b) for z [B,n] and b [n]; act is ReLU or the identity.
type biasActOp struct{ relu bool }

func (biasActOp) Arity() int { return 2 }
func (biasActOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	m := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(m, G.TensorType{Dims: 1, Of: a}, m)
}
func (biasActOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return shapeOf(in[0]) }
func (biasActOp) ReturnsPtr() bool                                  { return false }
func (biasActOp) CallsExtern() bool                                 { return false }
func (biasActOp) OverwritesInput() int                              { return -1 }
func (op biasActOp) WriteHash(h hash.Hash)                          { fmt.Fprintf(h, "jettrain.BiasAct{%v}", op.relu) }
func (op biasActOp) Hashcode() uint32                               { return hashOf(op) }
func (op biasActOp) String() string                                 { return fmt.Sprintf("BiasAct{relu=%v}", op.relu) }
func (biasActOp) DiffWRT(int) []bool                                { return []bool{true, true} }

func (op biasActOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(newLike(in[0]), in...)
}

func (op biasActOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	z, b, out, err := f32s3(in[0], in[1], prealloc)
	if err != nil {
		return nil, err
	}
	n := len(b)
	for r := 0; r < len(z); r += n {
		zr, or := z[r:r+n], out[r:r+n]
		for i, v := range zr {
			v += b[i]
			if op.relu && v < 0 {
				v = 0
			}
			or[i] = v
		}
	}
	return prealloc, nil
}

func (op biasActOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dz := grad
	if op.relu {
		var err error
		if dz, err = G.ApplyOp(reluGradOp{}, output, grad); err != nil {
			return nil, err
		}
	}
	db, err := G.ApplyOp(colSumOp{n: inputs[1].Shape().TotalSize()}, dz)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dz, db}, nil
}

// reluGradOp is g·[y > 0] for the output y of a ReLU and the incoming gradient g.
type reluGradOp struct{}

func (reluGradOp) Arity() int { return 2 }
func (reluGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	m := G.TensorType{Dims: 2, Of: a}
	return hm.NewFnType(m, m, m)
}
func (reluGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) { return shapeOf(in[0]) }
func (reluGradOp) ReturnsPtr() bool                                  { return false }
func (reluGradOp) CallsExtern() bool                                 { return false }
func (reluGradOp) OverwritesInput() int                              { return -1 }
func (reluGradOp) WriteHash(h hash.Hash)                             { fmt.Fprint(h, "jettrain.ReluGrad") }
func (op reluGradOp) Hashcode() uint32                               { return hashOf(op) }
func (reluGradOp) String() string                                    { return "ReluGrad" }

func (op reluGradOp) Do(in ...G.Value) (G.Value, error) {
	return op.UsePreallocDo(newLike(in[0]), in...)
}

func (reluGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	y, g, out, err := f32s3(in[0], in[1], prealloc)
	if err != nil {
		return nil, err
	}
	if len(g) != len(y) || len(out) != len(y) {
		return nil, fmt.Errorf("%w: relu grad lengths %d %d %d", ErrCompute, len(y), len(g), len(out))
	}
	for i, v := range y {
		if v > 0 {
			out[i] = g[i]
		} else {
			out[i] = 0
		}
	}
	return prealloc, nil
}

// colSumOp sums a [rows, n] matrix over its rows into a vector of n, adding rows in order.
type colSumOp struct{ n int }

func (colSumOp) Arity() int { return 1 }
func (colSumOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 1, Of: a})
}
func (op colSumOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{op.n}, nil }
func (colSumOp) ReturnsPtr() bool                                  { return false }
func (colSumOp) CallsExtern() bool                                 { return false }
func (colSumOp) OverwritesInput() int                              { return -1 }
func (op colSumOp) WriteHash(h hash.Hash)                          { fmt.Fprintf(h, "jettrain.ColSum{%d}", op.n) }
func (op colSumOp) Hashcode() uint32                               { return hashOf(op) }
func (op colSumOp) String() string                                 { return fmt.Sprintf("ColSum{%d}", op.n) }

func (op colSumOp) Do(in ...G.Value) (G.Value, error) {
	out := tensor.New(tensor.WithShape(op.n), tensor.Of(tensor.Float32))
	return op.UsePreallocDo(out, in...)
}

func (op colSumOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	m, ok1 := in[0].Data().([]float32)
	out, ok2 := prealloc.Data().([]float32)
	if !ok1 || !ok2 || len(out) != op.n || len(m)%op.n != 0 {
		return nil, fmt.Errorf("%w: column sum of %T into %T", ErrCompute, in[0], prealloc)
	}
	clear(out)
	colSum(m, out)
	return prealloc, nil
}

// rowSumOp sums each row of a [n, cols] matrix (left to right) into a vector of n.
type rowSumOp struct{ n int }

func (rowSumOp) Arity() int { return 1 }
func (rowSumOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 1, Of: a})
}
func (op rowSumOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{op.n}, nil }
func (rowSumOp) ReturnsPtr() bool                                  { return false }
func (rowSumOp) CallsExtern() bool                                 { return false }
func (rowSumOp) OverwritesInput() int                              { return -1 }
func (op rowSumOp) WriteHash(h hash.Hash)                          { fmt.Fprintf(h, "jettrain.RowSum{%d}", op.n) }
func (op rowSumOp) Hashcode() uint32                               { return hashOf(op) }
func (op rowSumOp) String() string                                 { return fmt.Sprintf("RowSum{%d}", op.n) }

func (op rowSumOp) Do(in ...G.Value) (G.Value, error) {
	out := tensor.New(tensor.WithShape(op.n), tensor.Of(tensor.Float32))
	return op.UsePreallocDo(out, in...)
}

func (op rowSumOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	m, ok1 := in[0].Data().([]float32)
	out, ok2 := prealloc.Data().([]float32)
	if !ok1 || !ok2 || len(out) != op.n || len(m)%op.n != 0 {
		return nil, fmt.Errorf("%w: row sum of %T into %T", ErrCompute, in[0], prealloc)
	}
	cols := len(m) / op.n
	for i := range out {
		var s float32
		for _, v := range m[i*cols : (i+1)*cols] {
			s += v
		}
		out[i] = s
	}
	return prealloc, nil
}

// colSum adds the rows of m (each len(out) long) into out, in row order.
func colSum(m, out []float32) {
	n := len(out)
	for r := 0; r < len(m); r += n {
		for i, v := range m[r : r+n] {
			out[i] += v
		}
	}
}

func shapeOf(d G.DimSizer) (tensor.Shape, error) {
	s, ok := d.(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("%w: shape %T", ErrCompute, d)
	}
	return s.Clone(), nil
}

func newLike(v G.Value) G.Value {
	return tensor.New(tensor.WithShape(v.Shape().Clone()...), tensor.Of(tensor.Float32))
}

func f32s3(a, b, c G.Value) (x, y, z []float32, err error) {
	x, ok1 := a.Data().([]float32)
	y, ok2 := b.Data().([]float32)
	z, ok3 := c.Data().([]float32)
	if !ok1 || !ok2 || !ok3 || len(y) == 0 || len(z) != len(x) {
		return nil, nil, nil, fmt.Errorf("%w: op operands %T %T %T", ErrCompute, a, b, c)
	}
	return x, y, z, nil
}

// hashOf is the FNV hash of an op's WriteHash text, as gorgonia's own ops compute it.
func hashOf(op G.Op) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
