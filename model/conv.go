package model

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	"gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// convPoolOp is the CNN's first block as one gorgonia op: a 3x3 convolution with padding 1
// and bias, ReLU, and 2x2 max-pooling with stride 2, from x [B,C,H,W], weights [F,C,3,3] and
// bias [F] to the pooled features flattened per sample, [B, F*(H/2)*(W/2)] (NCHW order).
//
// The convolution is one matrix product over the whole batch: the weights [F, C*9] times the
// im2col matrix [C*9, B*H*W], giving the activations channel-major [F, B*H*W] (long rows,
// which suit gonum's axpy kernels; the transposed product with k = 9 ran 3x slower).
// gorgonia's Conv2d computes the same product pixel-major and then transposes the result to
// NCHW and back in the backward pass, which costs more than the product itself.
//
// The op keeps its im2col matrix, activations and pooling arg-maxes in a scratch that its
// backward ops (convPoolGradOp, convWeightGradOp) read in the same run; this is why a
// program, like its Network, must not run on two goroutines at once. The input x is data,
// so no gradient flows to it.
type convPoolOp struct {
	c, h, w, f int
	s          *convScratch
}

type convScratch struct {
	batch  int
	cols   []float32 // [C*9, B*H*W]
	act    []float32 // [F, B*H*W] after bias and ReLU
	argmax []int32   // per pooled output, the index into act of its maximum
}

func newConvPoolOp(c, h, w, f int) *convPoolOp {
	return &convPoolOp{c: c, h: h, w: w, f: f, s: &convScratch{}}
}

func (op *convPoolOp) pooled() int { return op.f * (op.h / 2) * (op.w / 2) }

func (*convPoolOp) Arity() int { return 3 }
func (*convPoolOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 4, Of: a}, G.TensorType{Dims: 4, Of: a}, G.TensorType{Dims: 1, Of: a},
		G.TensorType{Dims: 2, Of: a})
}
func (op *convPoolOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	b, err := in[0].DimSize(0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{b, op.pooled()}, nil
}
func (*convPoolOp) ReturnsPtr() bool     { return false }
func (*convPoolOp) CallsExtern() bool    { return false }
func (*convPoolOp) OverwritesInput() int { return -1 }
func (op *convPoolOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "jettrain.ConvPool{%d,%d,%d,%d,%p}", op.c, op.h, op.w, op.f, op.s)
}
func (op *convPoolOp) Hashcode() uint32 { return hashOf(op) }
func (op *convPoolOp) String() string {
	return fmt.Sprintf("ConvPool{%dx%dx%d→%d}", op.c, op.h, op.w, op.f)
}
func (*convPoolOp) DiffWRT(int) []bool { return []bool{false, true, true} }

func (op *convPoolOp) Do(in ...G.Value) (G.Value, error) {
	b := in[0].Shape()[0]
	return op.UsePreallocDo(tensor.New(tensor.WithShape(b, op.pooled()), tensor.Of(tensor.Float32)), in...)
}

func (op *convPoolOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	x, ok1 := in[0].Data().([]float32)
	wt, ok2 := in[1].Data().([]float32)
	bias, ok3 := in[2].Data().([]float32)
	out, ok4 := prealloc.Data().([]float32)
	hw, k := op.h*op.w, op.c*9
	if !ok1 || !ok2 || !ok3 || !ok4 || len(x)%(op.c*hw) != 0 || len(wt) != op.f*k || len(bias) != op.f {
		return nil, fmt.Errorf("%w: conv operands %T %T %T", ErrCompute, in[0], in[1], in[2])
	}
	batch := len(x) / (op.c * hw)
	if len(out) != batch*op.pooled() {
		return nil, fmt.Errorf("%w: conv output %d, want %d", ErrCompute, len(out), batch*op.pooled())
	}
	s := op.s
	if s.batch != batch {
		*s = convScratch{batch: batch, cols: make([]float32, batch*hw*k), act: make([]float32, batch*hw*op.f),
			argmax: make([]int32, batch*op.pooled())}
	}
	op.im2col(x, s.cols)
	// act = wt · cols   ([F, k] · [k, B*HW])
	n := batch * hw
	G.WhichBLAS().Sgemm(blas.NoTrans, blas.NoTrans, op.f, n, k, 1, wt, k, s.cols, n, 0, s.act, n)
	for ch := 0; ch < op.f; ch++ {
		row, b := s.act[ch*n:(ch+1)*n], bias[ch]
		for i, v := range row {
			row[i] = max(v+b, 0)
		}
	}
	op.pool(s.act, out, s.argmax)
	return prealloc, nil
}

// im2col writes row ch*9 + di*3 + dj of cols [C*9, B*H*W]: for every output pixel
// (column b*H*W + i*W + j) the input value at offset (di-1, dj-1) of channel ch, zero outside
// the image.
func (op *convPoolOp) im2col(x, cols []float32) {
	h, w, c := op.h, op.w, op.c
	hw := h * w
	n := len(x) / c // B*H*W
	for ch := 0; ch < c; ch++ {
		for di := 0; di < 3; di++ {
			for dj := 0; dj < 3; dj++ {
				dst := cols[(ch*9+di*3+dj)*n : (ch*9+di*3+dj+1)*n]
				for b := 0; b < n/hw; b++ {
					plane := x[(b*c+ch)*hw : (b*c+ch+1)*hw]
					d := dst[b*hw : (b+1)*hw]
					for i := 0; i < h; i++ {
						ii := i + di - 1
						row := d[i*w : (i+1)*w]
						if ii < 0 || ii >= h {
							clear(row)
							continue
						}
						src := plane[ii*w : (ii+1)*w]
						for j := range row {
							jj := j + dj - 1
							if jj < 0 || jj >= w {
								row[j] = 0
							} else {
								row[j] = src[jj]
							}
						}
					}
				}
			}
		}
	}
}

// pool max-pools act [F, B*H*W] over 2x2 windows into out [B, F, H/2, W/2], recording for
// each output the index into act of its maximum (the first one in row-major window order).
func (op *convPoolOp) pool(act, out []float32, argmax []int32) {
	h, w, f := op.h, op.w, op.f
	ph, pw := h/2, w/2
	batch := len(out) / op.pooled()
	n := batch * h * w
	o := 0
	for b := 0; b < batch; b++ {
		for ch := 0; ch < f; ch++ {
			base := ch*n + b*h*w
			for pi := 0; pi < ph; pi++ {
				top := base + 2*pi*w // the window's two rows, sliced once
				r0, r1 := act[top:top+2*pw], act[top+w:top+w+2*pw]
				po, pa := out[o:o+pw], argmax[o:o+pw]
				for pj := range po {
					// The first maximum in row-major window order: a later
					// value must be greater (a NaN never is).
					best, v := int32(2*pj), r0[2*pj]
					if x := r0[2*pj+1]; x > v {
						best, v = int32(2*pj+1), x
					}
					if x := r1[2*pj]; x > v {
						best, v = int32(w+2*pj), x
					}
					if x := r1[2*pj+1]; x > v {
						best, v = int32(w+2*pj+1), x
					}
					po[pj], pa[pj] = v, int32(top)+best
				}
				o += pw
			}
		}
	}
}

func (op *convPoolOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dact, err := G.ApplyOp(convPoolGradOp{op}, grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(convWeightGradOp{op}, dact)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(rowSumOp{n: op.f}, dact)
	if err != nil {
		return nil, err
	}
	return G.Nodes{nil, dw, db}, nil
}

// convPoolGradOp routes the gradient of the pooled output back to the pre-activation of the
// convolution, [F, B*H*W]: each pooled output's gradient goes to its arg-max if that was
// positive (ReLU), everything else is zero. Windows do not overlap, so no sums are involved.
type convPoolGradOp struct{ fwd *convPoolOp }

func (convPoolGradOp) Arity() int { return 1 }
func (convPoolGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 2, Of: a})
}
func (op convPoolGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	b, err := in[0].DimSize(0)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{op.fwd.f, b * op.fwd.h * op.fwd.w}, nil
}
func (convPoolGradOp) ReturnsPtr() bool     { return false }
func (convPoolGradOp) CallsExtern() bool    { return false }
func (convPoolGradOp) OverwritesInput() int { return -1 }
func (op convPoolGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "jettrain.ConvPoolGrad{%p}", op.fwd.s)
}
func (op convPoolGradOp) Hashcode() uint32 { return hashOf(op) }
func (convPoolGradOp) String() string      { return "ConvPoolGrad" }

func (op convPoolGradOp) Do(in ...G.Value) (G.Value, error) {
	b := in[0].Shape()[0]
	out := tensor.New(tensor.WithShape(op.fwd.f, b*op.fwd.h*op.fwd.w), tensor.Of(tensor.Float32))
	return op.UsePreallocDo(out, in...)
}

func (op convPoolGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	g, ok1 := in[0].Data().([]float32)
	out, ok2 := prealloc.Data().([]float32)
	s := op.fwd.s
	if !ok1 || !ok2 || len(g) != len(s.argmax) || len(out) != len(s.act) {
		return nil, fmt.Errorf("%w: conv pool grad operands", ErrCompute)
	}
	clear(out)
	for o, idx := range s.argmax {
		if s.act[idx] > 0 {
			out[idx] = g[o]
		}
	}
	return prealloc, nil
}

// convWeightGradOp is the weight gradient dact · colsᵀ, [F, C*9] (= [F,C,3,3]).
type convWeightGradOp struct{ fwd *convPoolOp }

func (convWeightGradOp) Arity() int { return 1 }
func (convWeightGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(G.TensorType{Dims: 2, Of: a}, G.TensorType{Dims: 4, Of: a})
}
func (op convWeightGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.fwd.f, op.fwd.c, 3, 3}, nil
}
func (convWeightGradOp) ReturnsPtr() bool     { return false }
func (convWeightGradOp) CallsExtern() bool    { return false }
func (convWeightGradOp) OverwritesInput() int { return -1 }
func (op convWeightGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "jettrain.ConvWeightGrad{%p}", op.fwd.s)
}
func (op convWeightGradOp) Hashcode() uint32 { return hashOf(op) }
func (convWeightGradOp) String() string      { return "ConvWeightGrad" }

func (op convWeightGradOp) Do(in ...G.Value) (G.Value, error) {
	out := tensor.New(tensor.WithShape(op.fwd.f, op.fwd.c, 3, 3), tensor.Of(tensor.Float32))
	return op.UsePreallocDo(out, in...)
}

func (op convWeightGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	dact, ok1 := in[0].Data().([]float32)
	out, ok2 := prealloc.Data().([]float32)
	f, k, s := op.fwd.f, op.fwd.c*9, op.fwd.s
	if !ok1 || !ok2 || len(out) != f*k || len(dact) != len(s.act) {
		return nil, fmt.Errorf("%w: conv weight grad operands", ErrCompute)
	}
	n := len(dact) / f
	G.WhichBLAS().Sgemm(blas.NoTrans, blas.Trans, f, k, n, 1, dact, n, s.cols, n, 0, out, k)
	return prealloc, nil
}
