package model

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/gorgonia"
)

// The networks' matrix products go through gemmBLAS: gonum's BLAS, whose
// Sgemm computes the two products that take most of a dense layer's time —
// A·B (the forward pass, x·W) and Aᵀ·B (the weight gradient, xᵀ·dZ) — with
// AVX2 where the CPU has it. It does gonum's IEEE operations in gonum's
// order, so the bytes are gonum's on every processor:
//
//	for each row i of C, for l = 0, 1, ..., k-1:
//	    t := alpha * A[i,l]            (Aᵀ·B: alpha * A[l,i])
//	    if t != 0 { C[i,:] += t * B[l,:] }   (a float32 product, then a float32 sum)
//
// gonum runs that loop as one axpy per (i, l), loading and storing C[i,:]
// each time, and splits C into 64×64 blocks across goroutines. Neither
// changes the order in which an element of C takes its terms, so the
// kernels here are free to keep 32 elements of two rows of C in registers
// for the whole of l (each row skipping its own zero t), and to run on one
// goroutine: a data-parallel worker is one of as many as there are cores.
// A·Bᵀ, a dot product per element, is gonum's sum of dot products in
// gonum's blocks, also on one goroutine, where gonum would split it across
// goroutines (a few per product, each waited for in turn, left a worker
// waiting for a core while the broker had both). Each dot product is
// gonum's DotUnitary, whose assembly sets the order of its sum by the
// alignment of B's row; dots8 runs that order for eight rows of A at once
// (the backward product through the MLP's output layer, 32×256×10 a shard,
// in 26-28 µs where one Sdot per element took 110-118). Every other routine
// is gonum's own.
func init() { gorgonia.Use(gemmBLAS{}) }

type gemmBLAS struct{ gonum.Implementation }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major), as gonum does.
func (g gemmBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	aTrans, bTrans := tA == blas.Trans, tB == blas.Trans
	known := (aTrans || tA == blas.NoTrans) && (bTrans || tB == blas.NoTrans)
	// A·Bᵀ with fewer blocks than gonum parallelizes it is gonum's own
	// serial loop, on this goroutine: a dot product over the whole of k for
	// each element, which is sgemmDots's one block when k fits in one (with
	// k = 0 gonum still adds alpha·0, turning -0 into +0).
	dots := bTrans && !aTrans
	ours := dots && (gonumBlocks(m)*gonumBlocks(n) >= gonumMinParBlock || avx2 && 0 < k && k <= gonumBlockSize) || !bTrans && avx2
	// gonum panics on what gemmArgsFit refuses: that is left to it.
	if !known || !ours || !gemmArgsFit(aTrans, bTrans, m, n, k, a, lda, b, ldb, c, ldc) {
		g.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// gonum's first steps: nothing to do, or C = beta·C.
	if (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	// With beta 0, the kernels of A·B and Aᵀ·B start each row of C from
	// zero themselves rather than read it back cleared: the same bytes,
	// without a pass over C (800 KB for the default MLP's weight gradient)
	// before they start.
	fresh := beta == 0 && !bTrans && k > 0
	if !fresh {
		for i := range m {
			if row := c[i*ldc : i*ldc+n]; beta == 0 {
				clear(row)
			} else if beta != 1 {
				scaleBy(row, beta)
			}
		}
	}
	if bTrans {
		sgemmDots(m, n, k, alpha, a, lda, b, ldb, c, ldc)
	} else {
		sgemmRows(aTrans, fresh, m, n, k, alpha, a, lda, b, ldb, c, ldc)
	}
}

// gemmArgsFit reports whether Sgemm's arguments describe matrices inside
// their slices (what gonum checks before it computes, panicking if not),
// and that there is work.
func gemmArgsFit(aTrans, bTrans bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	if m <= 0 || n <= 0 || k < 0 || ldc < n || len(c) < (m-1)*ldc+n {
		return false
	}
	return matrixFits(aTrans, m, k, a, lda) && matrixFits(bTrans, k, n, b, ldb)
}

// matrixFits reports whether a (rows×cols, or its transpose stored when
// trans) lies inside s with leading dimension ld.
func matrixFits(trans bool, rows, cols int, s []float32, ld int) bool {
	if trans {
		rows, cols = cols, rows
	}
	return ld >= max(1, cols) && (rows == 0 || len(s) >= (rows-1)*ld+cols)
}

// Sizes of gonum's parallel Sgemm: it splits C into blockSize×blockSize
// blocks when there are at least minParBlock of them.
const (
	gonumBlockSize   = 64
	gonumMinParBlock = 4
)

// gonumBlocks is how many blocks gonum splits a dimension of d into.
func gonumBlocks(d int) int { return (d + gonumBlockSize - 1) / gonumBlockSize }

// sgemmDots is gonum's parallel Sgemm for A·Bᵀ (C has at least
// gonumMinParBlock blocks): every element of C takes alpha·dot(A[i,k0:k1],
// B[j,k0:k1]) (gonum's Sdot, whose assembly fixes the order of the sum) for
// each 64-wide slice of k, in order — what each of gonum's goroutines adds
// to its block of C (after C = beta·C). Here it all runs on the calling
// goroutine.
func sgemmDots(m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	for k0 := 0; k0 < k; k0 += gonumBlockSize {
		dotsOver(m, n, k0, min(k, k0+gonumBlockSize), alpha, a, lda, b, ldb, c, ldc)
	}
}

// dotsOver adds alpha·dot(A[i,k0:k1], B[j,k0:k1]) to every C[i,j], as
// gonum's sgemmSerialNotTrans does. With AVX2 it takes eight rows of A at a
// time: their block, transposed, goes through dots8, which computes the
// eight dot products with each row of B as gonum's DotUnitary computes
// each one (its summation order set by the alignment of B's row), eight
// lanes wide; C takes them as gonum adds them. The rows left over go
// through gonum's Sdot one product at a time.
func dotsOver(m, n, k0, k1 int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	i := 0
	if avx2 && k1-k0 <= gonumBlockSize {
		var at [gonumBlockSize * 8]float32
		var dots [8]float32
		var crows [8][]float32
		for ; i+8 <= m; i += 8 {
			for r := range crows {
				arow := a[(i+r)*lda+k0 : (i+r)*lda+k1]
				for l, v := range arow {
					at[8*l+r] = v
				}
				crows[r] = c[(i+r)*ldc : (i+r)*ldc+n]
			}
			for j := range n {
				dots8(&at[0], &b[j*ldb+k0], k1-k0, &dots)
				for r, d := range dots {
					crows[r][j] += alpha * d
				}
			}
		}
	}
	var impl gonum.Implementation
	for ; i < m; i++ {
		arow := a[i*lda+k0 : i*lda+k1]
		crow := c[i*ldc : i*ldc+n]
		for j := range crow {
			crow[j] += alpha * impl.Sdot(k1-k0, arow, 1, b[j*ldb+k0:j*ldb+k1], 1)
		}
	}
}

// sgemmRows is the rest of gonum's Sgemm for A·B and Aᵀ·B, after C = beta·C,
// or in place of C = 0·C with fresh (k > 0).
func sgemmRows(aTrans, fresh bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if k == 0 {
		return
	}
	// A's row i as a strided vector: A[i,l] at a[ai*i + as*l].
	ai, as := lda, 1
	if aTrans {
		ai, as = 1, lda
	}
	as4, bs4 := uintptr(4*as), uintptr(4*ldb)
	// Columns past the 32-wide tiles go 16 at a time, the last ones masked.
	tail := func(row []float32, ap *float32) {
		for j := n &^ 31; j < n; j += 16 {
			gemmTileN(&row[j], ap, as4, &b[j], bs4, k, alpha, min(16, n-j), fresh)
		}
	}
	// Rows in pairs, each B row loaded once for both.
	i := 0
	for ; i+1 < m; i += 2 {
		r0, r1 := c[i*ldc:i*ldc+n], c[(i+1)*ldc:(i+1)*ldc+n]
		a0, a1 := &a[ai*i], &a[ai*(i+1)]
		for j := 0; j+32 <= n; j += 32 {
			gemmTile2x32(&r0[j], &r1[j], a0, a1, as4, &b[j], bs4, k, alpha, fresh)
		}
		tail(r0, a0)
		tail(r1, a1)
	}
	if i < m { // the last of an odd m, paired with a scratch row whose sums are dropped
		var scratch [32]float32
		row, ap := c[i*ldc:i*ldc+n], &a[ai*i]
		for j := 0; j+32 <= n; j += 32 {
			gemmTile2x32(&row[j], &scratch[0], ap, ap, as4, &b[j], bs4, k, alpha, fresh)
		}
		tail(row, ap)
	}
}
