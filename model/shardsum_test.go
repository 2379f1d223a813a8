package model

import (
	"fmt"
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

// A prefix shorter than the sum, like a shorter gradient folded in, leaves
// zeros after it, not what the sum held before.
func TestShardSumShorterPrefixLeavesZerosAfterIt(t *testing.T) {
	c := NewShardSum(2, 8)
	ones := []float32{1, 1, 1, 1, 1, 1, 1, 1}
	c.Add(0, ones)
	c.Add(1, ones)
	c.Reset() // the sum still holds the step's 2s
	c.AddPrefix(2, []float32{1, 2, 3})
	if !c.Complete() {
		t.Fatal("a prefix of both shards did not complete the sum")
	}
	sameBits(t, "the sum after a shorter prefix", c.Sum(), []float32{1, 2, 3, 0, 0, 0, 0, 0})
}

// A ShardSum used step after step gives each step the bits of adding its
// shards, in shard order, to zeros, though Reset leaves the last step's
// values in place: its first shard is added to zeros (-0 becomes +0, NaNs
// pass through), and a sum read before any shard of the step is zeros.
func TestShardSumReusedStartsFromZeros(t *testing.T) {
	const shards, size = 3, 67
	negZero := float32(math.Copysign(0, -1))
	c := NewShardSum(shards, size)
	for step := range 12 {
		grads := make([][]float32, shards)
		for s := range grads {
			_, grads[s] = vectorCase(uint64(step*shards+s), size)
			grads[s][step] = negZero // a -0 in the first shard folded, whichever it is
		}
		if step%4 == 1 {
			// Read before any shard of the step (reading clears it: not
			// every step, so that the others start from what Reset left).
			sameBits(t, "a step's sum before its first shard", c.Sum(), make([]float32, size))
		}
		order := []int{0, 1, 2}
		if step%2 == 1 {
			order = []int{2, 0, 1} // the first shard folded is not the first added
		}
		for _, s := range order {
			c.Add(s, grads[s])
			want := make([]float32, size)
			for k := range c.Folded() {
				addToGo(want, grads[k])
			}
			if c.Folded() > 0 {
				sameBits(t, "a step's running sum", c.Sum(), want)
			}
		}
		if step%3 == 2 {
			c.Reset() // a step given up, its sum never applied
			continue
		}
		w := make([]float32, size)
		o, _ := NewOptimizer(DefaultOptimizer(OptSGD), size)
		c.Apply(o, w, 7, uint64(step))
	}
}

// A sum lent out (Lend) is left as it was, and the step taken from it is
// the step taken from a sum that was not: the mean is the same products,
// written into the next buffer instead of in place. The next step sums
// into that buffer.
func TestALentSumIsLeftAloneAndStepsTheSame(t *testing.T) {
	const shards, size = 3, 203
	lending, keeping := NewShardSumIn(shards, make([]float32, size)), NewShardSum(shards, size)
	a := newAdamPair(t, size)
	for step := range uint64(4) {
		for s := range shards {
			g := randVec(step*shards+uint64(s), size)
			lending.Add(s, g)
			keeping.Add(s, g)
		}
		want := slices.Clone(keeping.Sum())
		lent := lending.Lend(make([]float32, size))
		if &lending.Sum()[0] != &lent[0] {
			t.Fatalf("step %d: Sum after Lend is not the lent sum", step)
		}
		a.apply(t, step, lending, keeping)
		sameBits(t, "the lent sum", lent, want)
		lending.Add(0, randVec(100+step, size)) // folds into the next buffer, not the lent one
		keeping.Reset()
		lending.Reset()
		sameBits(t, "the lent sum once the next step's first shard is in", lent, want)
	}
}

// Only a complete sum is lent.
func TestLendingAnIncompleteSumPanics(t *testing.T) {
	c := NewShardSum(2, 4)
	c.Add(0, make([]float32, 4))
	defer func() {
		if recover() == nil {
			t.Fatal("Lend of a sum with 1 of 2 shards did not panic")
		}
	}()
	c.Lend(make([]float32, 4))
}

// A whole sum borrowed (Borrow), in place of whatever shards came before
// it, is left as it was, and the step taken from it is the step taken
// after folding the same sum in with AddShards. Once applied, the next
// step folds into the ShardSum's own buffer again.
func TestABorrowedSumIsLeftAloneAndStepsTheSame(t *testing.T) {
	const shards, size = 4, 203
	borrowing, copying := NewShardSum(shards, size), NewShardSum(shards, size)
	a := newAdamPair(t, size)
	for step := range uint64(4) {
		if step%2 == 1 {
			borrowing.Add(0, randVec(200+step, size)) // a shard that came first is replaced
			borrowing.Add(2, randVec(300+step, size)) // so is one that came ahead of its turn
		}
		sum := randVec(step, size)
		was := slices.Clone(sum)
		borrowing.Borrow(sum)
		copying.AddShards(0, shards, Parts{sum})
		if !borrowing.Complete() || &borrowing.Sum()[0] != &sum[0] {
			t.Fatalf("step %d: a borrowed sum is not the complete sum", step)
		}
		a.apply(t, step, borrowing, copying)
		sameBits(t, "the borrowed sum", sum, was)
		borrowing.Add(0, randVec(400+step, size))
		sameBits(t, "the borrowed sum once the next step's first shard is in", sum, was)
		borrowing.Reset()
	}
}

// adamPair is two copies of one training state, each stepped by Adam.
type adamPair struct {
	opts [2]Optimizer
	w    [2][]float32
}

func newAdamPair(t *testing.T, size int) *adamPair {
	t.Helper()
	var a adamPair
	for i := range a.opts {
		o, err := NewOptimizer(DefaultOptimizer(OptAdam), size)
		if err != nil {
			t.Fatal(err)
		}
		a.opts[i], a.w[i] = o, randVec(1000, size)
	}
	return &a
}

// apply takes step on each copy with its sum's mean, and checks that the
// weights stay the same bytes.
func (a *adamPair) apply(t *testing.T, step uint64, s0, s1 *ShardSum) {
	t.Helper()
	s0.Apply(a.opts[0], a.w[0], 128, step)
	s1.Apply(a.opts[1], a.w[1], 128, step)
	sameBits(t, fmt.Sprintf("step %d's weights", step), a.w[0], a.w[1])
}
