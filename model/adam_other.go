//go:build !amd64

package model

// adamVector reports whether a vector update runs here: it does not.
const adamVector = false

func adamUpdate(params, grad, m, v []float32, k *adamStep) { adamUpdateGo(params, grad, m, v, k) }
