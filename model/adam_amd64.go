package model

import "golang.org/x/sys/cpu"

// adamVector reports whether adamAVX2 can run here.
var adamVector = cpu.X86.HasAVX2

// adamUpdate updates eight elements at a time with AVX2 where the CPU has
// it, and the rest one at a time.
func adamUpdate(params, grad, m, v []float32, k *adamStep) {
	n := 0
	if adamVector {
		n = len(params) &^ 7
		if n > 0 {
			adamAVX2(params[:n], grad[:n], m[:n], v[:n], k)
		}
	}
	adamUpdateGo(params[n:], grad[n:], m[n:], v[n:], k)
}

// adamAVX2 is adamUpdateGo over len(params), a multiple of 8, elements;
// grad, m and v are at least as long.
//
//go:noescape
func adamAVX2(params, grad, m, v []float32, k *adamStep)
