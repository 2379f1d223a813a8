package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	G "gorgonia.org/gorgonia"
)

// gemmValues fills a slice with what a layer's products meet: many exact
// zeros of both signs (ReLU outputs, blank pixels), ordinary values of
// every magnitude, subnormals, and now and then an infinity or a NaN (of
// any payload).
func gemmValues(r *rand.Rand, n int, special bool) []float32 {
	out := make([]float32, n)
	for i := range out {
		switch p := r.IntN(100); {
		case p < 30:
			out[i] = 0
		case p < 35:
			out[i] = float32(math.Copysign(0, -1))
		case special && p < 37:
			out[i] = math.Float32frombits(uint32(r.IntN(1 << 23))) // subnormal
		case special && p == 37:
			out[i] = float32(math.Inf(1 - 2*r.IntN(2)))
		case special && p == 38:
			// Payloads and signs of their own: where two NaNs meet, the
			// one an instruction keeps shows its operand order.
			out[i] = math.Float32frombits(uint32(r.IntN(2))<<31 | 0x7fc00000 | uint32(1+r.IntN(1<<22-1)))
		default:
			out[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(9)-4)))
		}
	}
	return out
}

// TestSgemmIsGonums checks that the Sgemm the networks use gives gonum's
// bits, for every shape class the kernels split a row into (pairs of rows
// and a last odd one; 32-wide tiles and masked tails of up to 16), both
// of gonum's ways to sum dot
// products (C of fewer than 4 64×64 blocks or not), with A and B
// transposed or not, padded strides, and the alpha and beta gorgonia
// passes and others.
func TestSgemmIsGonums(t *testing.T) {
	if _, ok := G.WhichBLAS().(gemmBLAS); !ok {
		t.Fatalf("gorgonia computes products with %T, not gemmBLAS", G.WhichBLAS())
	}
	if !avx2 {
		t.Log("no gemm kernels on this CPU: Sgemm is gonum's; checking the delegation")
	}
	r := rand.New(rand.NewPCG(1, 2))
	shapes := [][3]int{{1, 1, 1}, {3, 5, 7}, {32, 256, 784}, {784, 256, 32}, {32, 10, 256}, {256, 10, 32},
		{16, 25088 % 1000, 9}, {5, 41, 0}, {2, 8, 3}, {7, 33, 65}, {64, 64, 64}, {65, 97, 129}, {32, 200, 150}, {130, 130, 0},
		{32, 128, 10}, {64, 256, 10}, {9, 3, 17}, {31, 70, 64}}
	for _, sh := range shapes {
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			aTrans, bTrans := tr[0], tr[1]
			// A NaN alpha with a payload of its own: each product keeps
			// the NaN of A's element where it has one, as in gonum.
			for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, 0.25}, {0, 1}, {0, 0}, {-1, 2}, {math.Float32frombits(0x7fc00077), 1}} {
				m, n, k := sh[0], sh[1], sh[2]
				special := r.IntN(2) == 0
				pad := r.IntN(3)
				lda := max(1, k) + pad
				if aTrans {
					lda = m + pad
				}
				ldb, ldc := n+r.IntN(3), n+r.IntN(3)
				if bTrans {
					ldb = max(1, k) + r.IntN(3)
				}
				a := gemmValues(r, max(1, lda*max(m, k)), special)
				b := gemmValues(r, max(1, ldb*max(n, k)), special)
				c := gemmValues(r, ldc*m, special)
				want, got := append([]float32(nil), c...), append([]float32(nil), c...)
				tA, tB := blas.NoTrans, blas.NoTrans
				if aTrans {
					tA = blas.Trans
				}
				if bTrans {
					tB = blas.Trans
				}
				gonum.Implementation{}.Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
				gemmBLAS{}.Sgemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], got, ldc)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("m=%d n=%d k=%d aTrans=%v bTrans=%v alpha=%v beta=%v: element %d (row %d col %d) is %v (%08x), gonum's %v (%08x)",
							m, n, k, aTrans, bTrans, ab[0], ab[1], i, i/ldc, i%ldc, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// TestSgemmPanicsAsGonum checks that matrices outside their slices are
// gonum's to refuse, with its panic, for every operand and transpose the
// kernels serve: they read A and B through pointers, past any bounds check.
func TestSgemmPanicsAsGonum(t *testing.T) {
	full, short := make([]float32, 16), make([]float32, 15)
	for _, tc := range []struct {
		name    string
		tA, tB  blas.Transpose
		a, b, c []float32
	}{
		{"short A", blas.NoTrans, blas.NoTrans, short, full, full},
		{"short Aᵀ", blas.Trans, blas.NoTrans, short, full, full},
		{"short B", blas.NoTrans, blas.NoTrans, full, short, full},
		{"short Bᵀ", blas.NoTrans, blas.Trans, full, short, full},
		{"short C", blas.NoTrans, blas.NoTrans, full, full, short},
	} {
		got := func() (r any) {
			defer func() { r = recover() }()
			gemmBLAS{}.Sgemm(tc.tA, tc.tB, 4, 4, 4, 1, tc.a, 4, tc.b, 4, 0, append([]float32(nil), tc.c...), 4)
			return nil
		}()
		want := func() (r any) {
			defer func() { r = recover() }()
			gonum.Implementation{}.Sgemm(tc.tA, tc.tB, 4, 4, 4, 1, tc.a, 4, tc.b, 4, 0, append([]float32(nil), tc.c...), 4)
			return nil
		}()
		if want == nil || got != want {
			t.Errorf("%s: panic %v, gonum's %v", tc.name, got, want)
		}
	}
}

// TestSgemmRunsHere checks that the products gonum would split across
// goroutines (C of at least 4 64×64 blocks) run on the calling goroutine:
// gonum's goroutines and channels allocate, the kernels and dots do not.
// TestSgemmIsGonums would still pass if every product went to gonum.
func TestSgemmRunsHere(t *testing.T) {
	const m, n, k = 64, 256, 96
	a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
	for _, tc := range []struct {
		name   string
		tA, tB blas.Transpose
		lda    int
		ldb    int
		kernel bool // served by the AVX2 kernels
	}{
		{"A·B", blas.NoTrans, blas.NoTrans, k, n, true},
		{"Aᵀ·B", blas.Trans, blas.NoTrans, m, n, true},
		{"A·Bᵀ", blas.NoTrans, blas.Trans, k, k, false},
	} {
		if tc.kernel && !avx2 {
			continue
		}
		run := func(impl blas.Float32Level3) float64 {
			return testing.AllocsPerRun(5, func() {
				impl.Sgemm(tc.tA, tc.tB, m, n, k, 1, a, tc.lda, b, tc.ldb, 0, c, n)
			})
		}
		if gonums := run(gonum.Implementation{}); gonums == 0 {
			t.Fatalf("%s: gonum's Sgemm does not allocate: the check checks nothing", tc.name)
		}
		if got := run(gemmBLAS{}); got != 0 {
			t.Errorf("%s: Sgemm allocates %v times a product: not on this goroutine", tc.name, got)
		}
	}
}

// BenchmarkSgemm compares the two products of the default MLP's first
// layer for a 32-sample shard, and the backward product through its output
// layer, with gonum's.
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, v := range []struct {
		name           string
		aTrans, bTrans bool
		m, n, k        int
	}{{"xW/32x256x784", false, false, 32, 256, 784}, {"xTdZ/784x256x32", true, false, 784, 256, 32}, {"dZWT/32x256x10", false, true, 32, 256, 10}} {
		lda, ldb := v.k, v.n
		if v.aTrans {
			lda = v.m
		}
		if v.bTrans {
			ldb = v.k
		}
		a, bm, c := gemmValues(r, v.m*v.k, false), gemmValues(r, v.k*v.n, false), make([]float32, v.m*v.n)
		tA, tB := blas.NoTrans, blas.NoTrans
		if v.aTrans {
			tA = blas.Trans
		}
		if v.bTrans {
			tB = blas.Trans
		}
		for _, impl := range []struct {
			name string
			blas.Float32Level3
		}{{"gonum", gonum.Implementation{}}, {"model", gemmBLAS{}}} {
			b.Run(v.name+"/"+impl.name, func(b *testing.B) {
				for b.Loop() {
					impl.Sgemm(tA, tB, v.m, v.n, v.k, 1, a, lda, bm, ldb, 0, c, v.n)
				}
				b.ReportMetric(2*float64(v.m*v.n*v.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
