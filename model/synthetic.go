package model

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
)

// Synthetic returns a small deterministic dataset shaped like Fashion-MNIST (1x28x28, 10
// classes) that networks learn within an epoch or two: each class has a random template of
// bright 4x4 blocks, and a sample is its class template at a random contrast plus uniform
// noise, clamped to [0,1]. Everything is drawn from math/rand/v2 PCG sources seeded by seed
// (stream 0 for the templates, 1 for train, 2 for test), so equal arguments give equal bytes.
func Synthetic(seed uint64, nTrain, nTest int) *Dataset {
	const classes, side = 10, 28
	tr := rand.New(rand.NewPCG(seed, 0))
	templates := make([][]float32, classes)
	for c := range templates {
		t := make([]float32, side*side)
		for b := 0; b < 12; b++ {
			bi, bj := int(tr.Uint64()%(side-4)), int(tr.Uint64()%(side-4))
			for i := bi; i < bi+4; i++ {
				for j := bj; j < bj+4; j++ {
					t[i*side+j] = 1
				}
			}
		}
		templates[c] = t
	}
	gen := func(stream uint64, n int) Split {
		r := rand.New(rand.NewPCG(seed, stream))
		s := Split{X: make([]float32, n*side*side), Y: make([]uint8, n), N: n}
		for k := 0; k < n; k++ {
			c := uint8(r.Uint64() % classes)
			s.Y[k] = c
			contrast := 0.4 + 0.6*float32(r.Float64())
			x := s.X[k*side*side : (k+1)*side*side]
			for i, v := range templates[c] {
				p := v*contrast + 0.5*float32(r.Float64())
				x[i] = min(p, 1)
			}
		}
		return s
	}
	id := sha256.Sum256(fmt.Appendf(nil, "synthetic/v1 seed=%d train=%d test=%d", seed, nTrain, nTest))
	return &Dataset{
		Name: DatasetSynthetic, Shape: [3]int{1, side, side}, Classes: classes,
		Train: gen(1, nTrain), Test: gen(2, nTest),
		Digest: hex.EncodeToString(id[:]),
	}
}
