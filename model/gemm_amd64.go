package model

// gemmTile2x32 adds, for l = 0, ..., k-1 with t = alpha*a0[l*as] non-zero
// (as, bs in bytes), t*b[l*bs : +32] to c0[0:32], and the same with a1 to
// c1[0:32]: each element's terms in l order, a float32 product and a
// float32 sum each. It is gonum's axpy loop over 32 elements of two rows of
// C, kept in registers, loading each row of B once for both. With zero, c0
// and c1 are not read: the sums start from +0, as if they had been cleared
// (gonum's C = 0·C when beta is 0), and are stored.
//
//go:noescape
func gemmTile2x32(c0, c1, a0, a1 *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, zero bool)

// gemmTileN is that loop over c[0:n] of one row, 0 < n <= 16.
//
//go:noescape
func gemmTileN(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, n int, zero bool)

// dots8 sets out[r] to gonum's f32.DotUnitary(x_r, y[0:n]), bit for bit,
// for the eight vectors x_r of a transposed block (x_r[l] at at[8*l+r]),
// 0 < n <= gonumBlockSize.
//
//go:noescape
func dots8(at, y *float32, n int, out *[8]float32)
