package model

import "golang.org/x/sys/cpu"

// avx2 reports whether the AVX2 loops can run here. They compute eight
// float32s at a time with the same IEEE operations, in the same order, as
// the element-wise Go code each of them has beside it, so the bytes of a
// run never depend on the processor.
var avx2 = cpu.X86.HasAVX2

// adamUpdate updates eight elements at a time with AVX2 where the CPU has
// it, and the rest one at a time.
func adamUpdate(params, grad, m, v []float32, k *adamStep) {
	n := 0
	if avx2 {
		n = len(params) &^ 7
		if n > 0 {
			adamAVX2(params[:n], grad[:n], m[:n], v[:n], k)
		}
	}
	adamUpdateGo(params[n:], grad[n:], m[n:], v[n:], k)
}

// addTo adds src to dst element-wise (len(src) elements).
func addTo(dst, src []float32) {
	n := 0
	if avx2 {
		n = len(src) &^ 7
		if n > 0 {
			addAVX2(dst[:n], src[:n])
		}
	}
	addToGo(dst[n:], src[n:])
}

// addToZero sets dst to 0 + src element-wise (len(src) elements): addTo
// on a cleared dst, without clearing it or reading it. (It is not a copy:
// 0 + -0 is +0.)
func addToZero(dst, src []float32) {
	n := 0
	if avx2 {
		n = len(src) &^ 7
		if n > 0 {
			addZeroAVX2(dst[:n], src[:n])
		}
	}
	addToZeroGo(dst[n:], src[n:])
}

// scaleBy multiplies every element of dst by k.
func scaleBy(dst []float32, k float32) { scaleInto(dst, dst, k) }

// scaleInto sets dst to src times k element-wise (len(dst) elements; dst
// may be src).
func scaleInto(dst, src []float32, k float32) {
	n := 0
	if avx2 {
		n = len(dst) &^ 7
		if n > 0 {
			scaleAVX2(dst[:n], src[:n], k)
		}
	}
	scaleIntoGo(dst[n:], src[n:], k)
}

// adamAVX2 is adamUpdateGo over len(params), a multiple of 8, elements;
// grad, m and v are at least as long.
//
//go:noescape
func adamAVX2(params, grad, m, v []float32, k *adamStep)

// addAVX2 is addToGo over len(dst), a multiple of 8, elements; src is as
// long.
//
//go:noescape
func addAVX2(dst, src []float32)

// addZeroAVX2 is addToZeroGo over len(dst), a multiple of 8, elements;
// src is as long.
//
//go:noescape
func addZeroAVX2(dst, src []float32)

// scaleAVX2 is scaleIntoGo over len(dst), a multiple of 8, elements; src
// is as long.
//
//go:noescape
func scaleAVX2(dst, src []float32, k float32)
