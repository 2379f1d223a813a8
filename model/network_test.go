package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// randomBatch returns a deterministic batch of n samples of the given shape.
func randomBatch(seed uint64, n int, input [3]int, classes int) ([]float32, []uint8) {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n*input[0]*input[1]*input[2])
	for i := range x {
		x[i] = r.Float32()
	}
	y := make([]uint8, n)
	for i := range y {
		y[i] = uint8(r.IntN(classes))
	}
	return x, y
}

// refLoss is an independent float64 implementation of the summed loss of a network, used
// to check gorgonia's gradients by central differences.
func refLoss(spec Spec, l Layout, input [3]int, classes int, w []float64, x []float32, y []uint8) float64 {
	get := func(name string) []float64 {
		for _, p := range l {
			if p.Name == name {
				return w[p.Offset : p.Offset+p.Size]
			}
		}
		panic(name)
	}
	c, h, wd := input[0], input[1], input[2]
	ss := c * h * wd
	var total float64
	for s := range y {
		var act []float64
		img := x[s*ss : (s+1)*ss]
		if spec.Kind == KindCNN {
			k, b := get("conv0.weight"), get("conv0.bias")
			conv := make([]float64, cnnFilters*h*wd)
			for f := 0; f < cnnFilters; f++ {
				for i := 0; i < h; i++ {
					for j := 0; j < wd; j++ {
						v := b[f]
						for ch := 0; ch < c; ch++ {
							for di := 0; di < 3; di++ {
								for dj := 0; dj < 3; dj++ {
									ii, jj := i+di-1, j+dj-1
									if ii < 0 || jj < 0 || ii >= h || jj >= wd {
										continue
									}
									v += k[((f*c+ch)*3+di)*3+dj] * float64(img[(ch*h+ii)*wd+jj])
								}
							}
						}
						conv[(f*h+i)*wd+j] = math.Max(v, 0)
					}
				}
			}
			ph, pw := h/2, wd/2
			act = make([]float64, cnnFilters*ph*pw)
			for f := 0; f < cnnFilters; f++ {
				for i := 0; i < ph; i++ {
					for j := 0; j < pw; j++ {
						m := math.Inf(-1)
						for di := 0; di < 2; di++ {
							for dj := 0; dj < 2; dj++ {
								m = math.Max(m, conv[(f*h+2*i+di)*wd+2*j+dj])
							}
						}
						act[(f*ph+i)*pw+j] = m
					}
				}
			}
		} else {
			act = make([]float64, ss)
			for i, v := range img {
				act[i] = float64(v)
			}
		}
		layers := len(spec.hidden()) + 1
		for li := 0; li < layers; li++ {
			wt := get("dense" + string(rune('0'+li)) + ".weight")
			b := get("dense" + string(rune('0'+li)) + ".bias")
			out := make([]float64, len(b))
			for o := range out {
				v := b[o]
				for i, a := range act {
					v += a * wt[i*len(b)+o]
				}
				if li < layers-1 {
					v = math.Max(v, 0)
				}
				out[o] = v
			}
			act = out
		}
		m := math.Inf(-1)
		for _, v := range act {
			m = math.Max(m, v)
		}
		var se float64
		for _, v := range act {
			se += math.Exp(v - m)
		}
		total += math.Log(se) - (act[y[s]] - m)
	}
	return total
}

// TestGradientFiniteDifferences compares gorgonia's float32 gradient with central
// differences (h = 1e-6) of the float64 reference loss. Tolerance: |g − fd| ≤ 1e-4 + 1e-4·|fd|
// for every parameter (float32 rounding of activations bounds the error well below that).
func TestGradientFiniteDifferences(t *testing.T) {
	cases := []struct {
		spec  Spec
		input [3]int
	}{
		{Spec{Kind: KindMLP, Hidden: []int{5}}, [3]int{1, 4, 4}},
		{Spec{Kind: KindMLP, Hidden: []int{6, 4}}, [3]int{1, 3, 3}},
		{Spec{Kind: KindCNN, Hidden: []int{4}}, [3]int{1, 6, 6}},
	}
	const classes, batch, h = 3, 3, 1e-6
	for _, tc := range cases {
		t.Run(tc.spec.Kind, func(t *testing.T) {
			net, err := New(tc.spec, tc.input, classes)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			params := net.Init(7)
			r := rand.New(rand.NewPCG(3, 3))
			for i := range params { // non-zero biases too
				params[i] += float32(r.NormFloat64() * 0.1)
			}
			x, y := randomBatch(11, batch, tc.input, classes)
			grad := make([]float32, len(params))
			st, err := net.Gradient(params, x, y, grad)
			if err != nil {
				t.Fatal(err)
			}
			w := make([]float64, len(params))
			for i, v := range params {
				w[i] = float64(v)
			}
			ref := refLoss(tc.spec, net.Layout(), tc.input, classes, w, x, y)
			if math.Abs(ref-st.LossSum) > 1e-4*math.Abs(ref) {
				t.Fatalf("loss %v, reference %v", st.LossSum, ref)
			}
			worst := 0.0
			for i := range w {
				orig := w[i]
				w[i] = orig + h
				up := refLoss(tc.spec, net.Layout(), tc.input, classes, w, x, y)
				w[i] = orig - h
				down := refLoss(tc.spec, net.Layout(), tc.input, classes, w, x, y)
				w[i] = orig
				fd := (up - down) / (2 * h)
				diff := math.Abs(float64(grad[i]) - fd)
				if diff > 1e-4+1e-4*math.Abs(fd) {
					t.Errorf("param %d: gorgonia %v, finite difference %v", i, grad[i], fd)
				}
				worst = math.Max(worst, diff)
			}
			t.Logf("%d params, worst |g-fd| = %.2g", len(w), worst)
		})
	}
}

// TestGradientRepeatable: 100 calls on one Network give the same bytes (no accumulation),
// and so do separate Networks on several goroutines.
func TestGradientRepeatable(t *testing.T) {
	for _, spec := range []Spec{{Kind: KindMLP}, {Kind: KindCNN, Hidden: []int{8}}} {
		t.Run(spec.Kind, func(t *testing.T) {
			input := [3]int{1, 28, 28}
			net, err := New(spec, input, 10)
			if err != nil {
				t.Fatal(err)
			}
			params := net.Init(1)
			x, y := randomBatch(2, 16, input, 10)
			grad := make([]float32, len(params))
			if _, err := net.Gradient(params, x, y, grad); err != nil {
				t.Fatal(err)
			}
			want := Digest(grad)
			repeats := 100
			if testing.Short() || spec.Kind == KindCNN {
				repeats = 20
			}
			for i := 0; i < repeats; i++ {
				if _, err := net.Gradient(params, x, y, grad); err != nil {
					t.Fatal(err)
				}
				if Digest(grad) != want {
					t.Fatalf("repeat %d: gradient changed", i)
				}
			}
			var wg sync.WaitGroup
			got := make([][32]byte, 3)
			for g := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, err := New(spec, input, 10)
					if err != nil {
						t.Error(err)
						return
					}
					defer n.Close()
					gr := make([]float32, len(params))
					for i := 0; i < 3; i++ {
						if _, err := n.Gradient(params, x, y, gr); err != nil {
							t.Error(err)
							return
						}
					}
					got[g] = Digest(gr)
				}()
			}
			wg.Wait()
			for g, d := range got {
				if d != want {
					t.Errorf("goroutine %d: gradient differs", g)
				}
			}
		})
	}
}

func TestGradientErrors(t *testing.T) {
	net, err := New(Spec{Kind: KindMLP, Hidden: []int{4}}, [3]int{1, 2, 2}, 3)
	if err != nil {
		t.Fatal(err)
	}
	params := net.Init(1)
	grad := make([]float32, len(params))
	x := make([]float32, 8)
	if _, err := net.Gradient(params[1:], x, []uint8{0, 1}, grad); !errors.Is(err, ErrShape) {
		t.Errorf("short params: %v", err)
	}
	if _, err := net.Gradient(params, x[1:], []uint8{0, 1}, grad); !errors.Is(err, ErrShape) {
		t.Errorf("short x: %v", err)
	}
	if _, err := net.Gradient(params, x, []uint8{0, 3}, grad); !errors.Is(err, ErrLabel) {
		t.Errorf("bad label: %v", err)
	}
	grad[0] = 1
	if st, err := net.Gradient(params, nil, nil, grad); err != nil || st != (Stats{}) || grad[0] != 0 {
		t.Errorf("empty batch: %v %v %v", st, err, grad[0])
	}
	if _, err := New(Spec{Kind: "rnn"}, [3]int{1, 2, 2}, 3); !errors.Is(err, ErrSpec) {
		t.Errorf("bad kind: %v", err)
	}
	if err := (Spec{Kind: KindMLP, Hidden: []int{0}}).Validate(); !errors.Is(err, ErrSpec) {
		t.Errorf("bad hidden: %v", err)
	}
}

// TestGradientNoStaleState: a Network that has run other batches and batch sizes in between
// gives the same bytes as a fresh one (the tape's registers are reused across runs).
func TestGradientNoStaleState(t *testing.T) {
	for _, spec := range []Spec{{Kind: KindMLP}, {Kind: KindCNN, Hidden: []int{8}}} {
		input := [3]int{1, 28, 28}
		net, _ := New(spec, input, 10)
		fresh, _ := New(spec, input, 10)
		params := net.Init(4)
		xa, ya := randomBatch(5, 8, input, 10)
		xb, yb := randomBatch(6, 8, input, 10)
		xc, yc := randomBatch(7, 3, input, 10)
		g := make([]float32, len(params))
		want := make([]float32, len(params))
		wantSt, _ := fresh.Gradient(params, xa, ya, want)
		for _, b := range []struct {
			x []float32
			y []uint8
		}{{xa, ya}, {xb, yb}, {xc, yc}, {xb, yb}} {
			if _, err := net.Gradient(params, b.x, b.y, g); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := net.Evaluate(params, xb, yb); err != nil {
			t.Fatal(err)
		}
		st, _ := net.Gradient(params, xa, ya, g)
		if Digest(g) != Digest(want) || st != wantSt {
			t.Errorf("%s: gradient after other batches differs", spec.Kind)
		}
		ev, _ := net.Evaluate(params, xa, ya)
		if ev != wantSt {
			t.Errorf("%s: Evaluate %+v, Gradient %+v", spec.Kind, ev, wantSt)
		}
	}
}

// TestEvaluateWithPausesBetweenChunks: EvaluateWith calls between after
// every chunk but the last, and gives Evaluate's stats bit for bit.
func TestEvaluateWithPausesBetweenChunks(t *testing.T) {
	input := [3]int{1, 28, 28}
	net, _ := New(Spec{Kind: KindMLP, Hidden: []int{16}}, input, 10)
	params := net.Init(2)
	n := 2*evalChunk + 7 // three chunks
	x, y := randomBatch(9, n, input, 10)
	want, err := net.Evaluate(params, x, y)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	got, err := net.EvaluateWith(params, x, y, func() error { calls++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got != want || calls != 2 {
		t.Fatalf("EvaluateWith: %+v after %d pauses; Evaluate %+v, want 2 pauses", got, calls, want)
	}
	stop := errors.New("stop")
	calls = 0
	if _, err := net.EvaluateWith(params, x, y, func() error { calls++; return stop }); err != stop || calls != 1 {
		t.Fatalf("EvaluateWith stopped at the first pause: %v after %d pauses, want the pause's error after 1", err, calls)
	}
}
