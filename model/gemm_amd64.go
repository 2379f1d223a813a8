package model

// gemmKernels reports whether gemmTile32 and gemmTileN run here.
var gemmKernels = avx2

// gemmTile32 adds, for l = 0, ..., k-1 with t = alpha*a[l*as] non-zero
// (as, bs in bytes), t*b[l*bs : +32] to c[0:32], each element's terms in l
// order, a float32 product and a float32 sum each: gonum's axpy loop over
// 32 elements of a row of C, kept in registers.
//
//go:noescape
func gemmTile32(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32)

// gemmTileN is gemmTile32 over c[0:n], 0 < n <= 8.
//
//go:noescape
func gemmTileN(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, n int)

// gemmTile2x32 is gemmTile32 over two rows of C, c0 with coefficients
// from a0 and c1 from a1, loading each row of B once for both.
//
//go:noescape
func gemmTile2x32(c0, c1, a0, a1 *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32)

// gemmTile16N is gemmTile32 over c[0:n], 8 < n <= 16.
//
//go:noescape
func gemmTile16N(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, n int)
