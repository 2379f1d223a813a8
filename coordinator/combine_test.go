package coordinator

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/jettrain/jettrain/protocol"
)

// The combined sum has the same bits whatever order the shards arrive in,
// and equals adding them up in shard order at the end.
func TestCombinerOrderDoesNotChangeTheSum(t *testing.T) {
	const shards, size = 6, 1000
	rng := rand.New(rand.NewPCG(1, 2))
	grads := make([]*protocol.Grad, shards)
	want := make([]float32, size)
	for s := range grads {
		g := &protocol.Grad{Shard: uint16(s), Grad: make([]float32, size), LossSum: rng.Float64(), Count: 3}
		for i := range g.Grad {
			g.Grad[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		}
		grads[s] = g
		for i, v := range g.Grad {
			want[i] += v
		}
	}
	c := newCombiner(shards, size)
	for trial := 0; trial < 50; trial++ {
		order := rng.Perm(shards)
		for k, s := range order {
			if c.complete() {
				t.Fatalf("trial %d: complete after %d of %d shards", trial, k, shards)
			}
			g := *grads[s]
			g.Grad = slices.Clone(g.Grad)
			c.add(&g)
			clear(g.Grad) // the combiner must not keep the caller's slice
		}
		if !c.complete() {
			t.Fatalf("trial %d: not complete after every shard", trial)
		}
		for i := range want {
			if math.Float32bits(c.sum[i]) != math.Float32bits(want[i]) {
				t.Fatalf("trial %d (order %v): sum[%d] = %v, want %v", trial, order, i, c.sum[i], want[i])
			}
		}
		c.reset()
	}
}
