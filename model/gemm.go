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
// changes the order in which an element of C takes its terms, so the kernel
// here is free to keep 32 elements of a row of C in registers for the
// whole of l, and to run on one goroutine: a data-parallel worker is one
// of as many as there are cores. The products with Bᵀ (dot products, whose
// order gonum's assembly fixes) and every other routine are gonum's own.
func init() { gorgonia.Use(gemmBLAS{}) }

type gemmBLAS struct{ gonum.Implementation }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C (row-major), as gonum does.
func (g gemmBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if !gemmKernels || tB != blas.NoTrans || tA != blas.NoTrans && tA != blas.Trans || !gemmArgsFit(tA == blas.Trans, m, n, k, a, lda, b, ldb, c, ldc) {
		// gonum also panics on what gemmArgsFit refuses.
		g.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	sgemmRows(tA == blas.Trans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmArgsFit reports whether the arguments of an Sgemm with B not
// transposed describe matrices inside their slices (what gonum checks
// before it computes, panicking if not), and that there is work.
func gemmArgsFit(aTrans bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	if m <= 0 || n <= 0 || k < 0 || ldb < n || ldc < n || len(c) < (m-1)*ldc+n {
		return false
	}
	if k > 0 && len(b) < (k-1)*ldb+n {
		return false
	}
	if aTrans {
		return lda >= m && (k == 0 || len(a) >= (k-1)*lda+m)
	}
	return lda >= max(1, k) && len(a) >= (m-1)*lda+k
}

// sgemmRows is gonum's Sgemm for B not transposed, A transposed or not,
// on arguments gemmArgsFit accepts.
func sgemmRows(aTrans bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if (alpha == 0 || k == 0) && beta == 1 {
		return
	}
	if beta != 1 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			if beta == 0 {
				clear(row)
			} else {
				for j := range row {
					row[j] *= beta
				}
			}
		}
	}
	if k == 0 {
		return
	}
	// A's row i as a strided vector: A[i,l] at a[ai*i + as*l].
	ai, as := lda, 1
	if aTrans {
		ai, as = 1, lda
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		ap := &a[ai*i]
		j := 0
		for ; j+32 <= n; j += 32 {
			gemmTile32(&row[j], ap, uintptr(4*as), &b[j], uintptr(4*ldb), k, alpha)
		}
		for ; j < n; j += 8 {
			gemmTileN(&row[j], ap, uintptr(4*as), &b[j], uintptr(4*ldb), k, alpha, min(8, n-j))
		}
	}
}
