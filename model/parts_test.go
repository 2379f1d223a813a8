package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// GradientParts is Gradient in pieces: one per parameter, in Layout order,
// the same bytes once put together; an empty batch's are zeros.
func TestGradientPartsAreTheGradientInLayoutOrder(t *testing.T) {
	for _, spec := range []Spec{{Kind: KindMLP}, {Kind: KindCNN, Hidden: []int{8}}} {
		t.Run(spec.Kind, func(t *testing.T) {
			input := [3]int{1, 28, 28}
			net, err := New(spec, input, 10)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			params := net.Init(1)
			x, y := randomBatch(2, 16, input, 10)
			want := make([]float32, len(params))
			wantSt, err := net.Gradient(params, x, y, want)
			if err != nil {
				t.Fatal(err)
			}
			parts, st, err := net.GradientParts(params, x, y)
			if err != nil {
				t.Fatal(err)
			}
			if st != wantSt {
				t.Errorf("stats %+v, Gradient's %+v", st, wantSt)
			}
			layout := net.Layout()
			if len(parts) != len(layout) {
				t.Fatalf("%d parts for %d parameters", len(parts), len(layout))
			}
			for i, prm := range layout {
				if len(parts[i]) != prm.Size {
					t.Fatalf("part %d (%s): %d values, want %d", i, prm.Name, len(parts[i]), prm.Size)
				}
			}
			got := make([]float32, parts.Len())
			if n := parts.CopyTo(got); n != len(params) {
				t.Fatalf("copied %d values, want %d", n, len(params))
			}
			if Digest(got) != Digest(want) {
				t.Fatal("the parts put together are not Gradient's bytes")
			}

			zeros, st, err := net.GradientParts(params, x[:0], y[:0])
			if err != nil {
				t.Fatal(err)
			}
			if st != (Stats{}) || zeros.Len() != len(params) {
				t.Fatalf("empty batch: stats %+v, %d values", st, zeros.Len())
			}
			for _, p := range zeros {
				if slices.ContainsFunc(p, func(v float32) bool { return v != 0 }) {
					t.Fatal("empty batch: a gradient value is not zero")
				}
			}
		})
	}
}

// A gradient handed to a ShardSum in pieces gives the sum the bits it
// gives handed in whole, however it is cut (pieces whose lengths are not
// a multiple of the vector loops' eight included) and whatever the order
// the shards arrive in; the sum keeps none of the pieces.
func TestShardSumOfPartsIsTheSameSum(t *testing.T) {
	const shards, size = 4, 1003
	rng := rand.New(rand.NewPCG(5, 6))
	grads := make([][]float32, shards)
	for s := range grads {
		grads[s] = make([]float32, size)
		for i := range grads[s] {
			grads[s][i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(8)-4)))
		}
	}
	whole := NewShardSum(shards, size)
	for s, g := range grads {
		whole.Add(s, g)
	}
	want := slices.Clone(whole.Sum())

	cut := func(g []float32) Parts {
		var p Parts
		for len(g) > 0 {
			n := min(len(g), 1+rng.IntN(300))
			p = append(p, slices.Clone(g[:n]))
			g = g[n:]
		}
		return p
	}
	inParts := NewShardSum(shards, size)
	for trial := range 30 {
		order := rng.Perm(shards)
		for _, s := range order {
			p := cut(grads[s])
			inParts.AddParts(s, p)
			for _, piece := range p {
				clear(piece) // the sum must not keep the pieces
			}
		}
		if !inParts.Complete() {
			t.Fatalf("trial %d: not complete after every shard", trial)
		}
		for i, v := range inParts.Sum() {
			if math.Float32bits(v) != math.Float32bits(want[i]) {
				t.Fatalf("trial %d (order %v): sum[%d] = %v, want %v", trial, order, i, v, want[i])
			}
		}
		inParts.Reset()
	}
}
