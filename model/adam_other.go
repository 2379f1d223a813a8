//go:build !amd64

package model

func adamUpdate(params, grad, m, v []float32, k *adamStep) { adamUpdateGo(params, grad, m, v, k) }
