package model

import (
	"math"
	"math/rand/v2"

	"github.com/jettrain/jettrain/internal/digest"
)

// initStream tags the PCG streams used for weight initialization ("init" in ASCII).
const initStream = 0x696e6974 << 32

// Init returns freshly initialized parameters, a pure function of the layout and seed:
// weight tensor i (in Layout order) is drawn from its own math/rand/v2 PCG source,
// rand.NewPCG(seed, initStream+i), uniformly in ±sqrt(6/(fanIn+fanOut)) (Glorot); biases
// are zero.
func (n *Network) Init(seed uint64) []float32 {
	out := make([]float32, n.layout.Size())
	for i, p := range n.layout {
		if len(p.Shape) == 1 {
			continue // bias
		}
		var fanIn, fanOut int
		if len(p.Shape) == 4 { // conv [out, in, kh, kw]
			k := p.Shape[2] * p.Shape[3]
			fanIn, fanOut = p.Shape[1]*k, p.Shape[0]*k
		} else { // dense [in, out]
			fanIn, fanOut = p.Shape[0], p.Shape[1]
		}
		limit := math.Sqrt(6 / float64(fanIn+fanOut))
		r := rand.New(rand.NewPCG(seed, initStream+uint64(i)))
		w := out[p.Offset : p.Offset+p.Size]
		for j := range w {
			w[j] = float32((2*r.Float64() - 1) * limit)
		}
	}
	return out
}

// Digest is the sha256 of params as little-endian float32 bytes: the name of weights where
// they are kept or reported (checkpoints, inspect, the end of a run).
func Digest(params []float32) [32]byte { return digest.Weights(params) }

// Check is the 64-bit XXH3 of params as little-endian float32 bytes: the name of a weights
// version while a run trains. Commit records carry it, gradients name the version they were
// computed on by it, and replicas compare theirs with the coordinator's every step.
func Check(params []float32) [8]byte { return digest.Check(params) }
