package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The combined sum has the same bits whatever order the shards arrive in,
// and equals adding them up in shard order at the end.
func TestShardSumOrderDoesNotChangeTheSum(t *testing.T) {
	const shards, size = 6, 1000
	rng := rand.New(rand.NewPCG(1, 2))
	grads := make([][]float32, shards)
	want := make([]float32, size)
	for s := range grads {
		g := make([]float32, size)
		for i := range g {
			g[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		}
		grads[s] = g
		for i, v := range g {
			want[i] += v
		}
	}
	c := NewShardSum(shards, size)
	for trial := 0; trial < 50; trial++ {
		order := rng.Perm(shards)
		for k, s := range order {
			if c.Complete() {
				t.Fatalf("trial %d: complete after %d of %d shards", trial, k, shards)
			}
			g := slices.Clone(grads[s])
			c.Add(s, g)
			clear(g) // the sum must not keep the caller's slice
		}
		if !c.Complete() {
			t.Fatalf("trial %d: not complete after every shard", trial)
		}
		for i := range want {
			if math.Float32bits(c.sum[i]) != math.Float32bits(want[i]) {
				t.Fatalf("trial %d (order %v): sum[%d] = %v, want %v", trial, order, i, c.sum[i], want[i])
			}
		}
		c.Reset()
	}
}

// A prefix handed in (the sum of the first shards, as another ShardSum
// holds it) gives the same bits as folding those shards, whatever the sum
// held of them already.
func TestShardSumPrefixIsTheSameSum(t *testing.T) {
	const shards, size = 5, 300
	rng := rand.New(rand.NewPCG(3, 4))
	grads := make([][]float32, shards)
	for s := range grads {
		grads[s] = make([]float32, size)
		for i := range grads[s] {
			grads[s][i] = float32(rng.NormFloat64())
		}
	}
	whole := NewShardSum(shards, size)
	for s, g := range grads {
		whole.Add(s, g)
	}
	for n := 2; n <= shards; n++ {
		prefix := NewShardSum(shards, size)
		for s := range n {
			prefix.Add(s, grads[s])
		}
		for _, before := range [][]int{nil, {0}, {1, 3}, {4}} {
			c := NewShardSum(shards, size)
			for _, s := range before {
				c.Add(s, grads[s])
			}
			if c.Folded() >= n {
				continue
			}
			c.AddPrefix(n, prefix.Sum())
			for s := range grads {
				if !c.Has(s) {
					c.Add(s, grads[s])
				}
			}
			if !c.Complete() {
				t.Fatalf("prefix %d after %v: not complete", n, before)
			}
			for i := range whole.sum {
				if math.Float32bits(c.sum[i]) != math.Float32bits(whole.sum[i]) {
					t.Fatalf("prefix %d after %v: sum[%d] = %v, want %v", n, before, i, c.sum[i], whole.sum[i])
				}
			}
		}
	}
}
