//go:build !amd64

package model

func gemmTile2x32(c0, c1, a0, a1 *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, zero bool) {
	panic("model: no gemm kernels on this architecture")
}

func gemmTileN(c, a *float32, as uintptr, b *float32, bs uintptr, k int, alpha float32, n int, zero bool) {
	panic("model: no gemm kernels on this architecture")
}

func dots8(at, y *float32, n int, out *[8]float32) {
	panic("model: no gemm kernels on this architecture")
}
