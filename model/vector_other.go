//go:build !amd64

package model

// avx2 reports whether vector loops run here: they do not.
const avx2 = false

func adamUpdate(params, grad, m, v []float32, k *adamStep) { adamUpdateGo(params, grad, m, v, k) }

func addTo(dst, src []float32) { addToGo(dst, src) }

func addToZero(dst, src []float32) { addToZeroGo(dst, src) }

func scaleBy(dst []float32, k float32) { scaleByGo(dst, k) }

func scaleInto(dst, src []float32, k float32) { scaleIntoGo(dst, src, k) }
