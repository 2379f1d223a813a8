package model

// ShardSum sums the shard gradients of one step in shard order, folding
// each in as soon as every shard before it has arrived, and applies their
// mean. The sum is the same sequence of float32 additions as adding all
// shards at the end — (((0 + g0) + g1) + g2) + … — so it does not matter
// when or in which order the gradients arrive, but most of the work is done
// while the last shards are still being computed. A gradient that arrives
// ahead of its turn is copied into a buffer the ShardSum owns; it never
// keeps the caller's slices, but for a whole sum it is asked to Borrow.
//
// The coordinator and every worker replica step through the same ShardSum
// code, which is what makes their weights the same bytes; its AVX2 and
// element-wise loops give the same bytes too.
type ShardSum struct {
	sum    []float32
	whole  []float32 // the complete sum in a buffer not its own (Lend, Borrow) until Apply or Reset; sum is then where the mean goes
	got    []bool
	ahead  [][]float32 // gradients waiting for an earlier shard, by shard
	folded int         // shards [0, folded) are in sum; with none, sum holds stale values
}

// NewShardSum returns an empty sum of shards gradients of size values.
func NewShardSum(shards, size int) *ShardSum { return NewShardSumIn(shards, make([]float32, size)) }

// NewShardSumIn returns an empty sum of shards gradients that sums into
// buf, which the caller must not touch meanwhile (see Lend).
func NewShardSumIn(shards int, buf []float32) *ShardSum {
	return &ShardSum{sum: buf, got: make([]bool, shards), ahead: make([][]float32, shards)}
}

// Lend gives the caller the complete sum's buffer — Sum — for good: the
// ShardSum reads it until Apply or Reset and never writes to it again.
// From then on it sums into next, of the same length, where Apply writes
// the mean (the same products as in place). A sender can so publish the
// sum from the buffer it was folded in, without a copy, while the step's
// update reads it.
func (c *ShardSum) Lend(next []float32) []float32 {
	if !c.Complete() || c.whole != nil || len(next) != len(c.sum) {
		panic("model: ShardSum.Lend: the sum is not complete, or lent already, or next has the wrong length")
	}
	c.whole, c.sum = c.sum, next
	return c.whole
}

// Borrow takes sum, the gradients of every shard folded from zero in
// shard order (what a ShardSum holds once it has folded them all), in
// place of whatever it holds, without copying it: the ShardSum reads sum
// until Apply or Reset and never writes to it, and the caller must not
// change it meanwhile. Apply then writes the mean to the ShardSum's own
// buffer, the same bytes as after AddShards(0, shards, sum). A receiver
// that applies the step at once, as the coordinator does with a step's
// whole sum, so saves a copy of the gradient.
func (c *ShardSum) Borrow(sum []float32) {
	if c.whole != nil || len(sum) != len(c.sum) {
		panic("model: ShardSum.Borrow: it holds a whole sum already, or sum has the wrong length")
	}
	for i := range c.got {
		c.got[i] = true
	}
	c.folded = len(c.got)
	c.whole = sum
}

// Has reports whether shard has been added since the last Reset.
func (c *ShardSum) Has(shard int) bool { return c.got[shard] }

// Complete reports whether every shard has been folded in.
func (c *ShardSum) Complete() bool { return c.folded == len(c.got) }

// Add takes shard's gradient, which must not have been added yet.
func (c *ShardSum) Add(shard int, g []float32) { c.AddParts(shard, Parts{g}) }

// AddParts is Add for a gradient held in pieces (GradientParts): folded in
// piece by piece, or, ahead of its turn, copied. It keeps none of them.
func (c *ShardSum) AddParts(shard int, g Parts) {
	c.got[shard] = true
	if shard != c.folded {
		if c.ahead[shard] == nil {
			c.ahead[shard] = make([]float32, len(c.sum))
		}
		g.CopyTo(c.ahead[shard])
		return
	}
	c.fold(g)
	for c.folded < len(c.got) && c.got[c.folded] {
		c.fold(Parts{c.ahead[c.folded]})
	}
}

// AddPrefix takes sum, the gradients of shards [0, n) folded from zero in
// shard order (what a ShardSum holds once it has folded them), in place of
// what it holds of those shards: what it has folded of them is the start of
// the same sequence of additions. n must exceed Folded.
func (c *ShardSum) AddPrefix(n int, sum []float32) { c.addPrefix(n, Parts{sum}) }

func (c *ShardSum) addPrefix(n int, sum Parts) {
	clear(c.sum[sum.CopyTo(c.sum):])
	for i := range n {
		c.got[i] = true
	}
	c.folded = n
	for c.folded < len(c.got) && c.got[c.folded] {
		c.fold(Parts{c.ahead[c.folded]})
	}
}

// Holds reports whether the sum has what a gradient of shards
// [first, first+n) brings: shard first alone (n == 1), or, for the sum of
// shards 0..n-1 (first == 0), at least n shards folded.
func (c *ShardSum) Holds(first, n int) bool {
	if n == 1 {
		return c.got[first]
	}
	return c.folded >= n
}

// AddShards takes a gradient of shards [first, first+n) — one shard's, or
// the sum of shards 0..n-1 — unless Holds says the sum has it already.
func (c *ShardSum) AddShards(first, n int, g Parts) {
	switch {
	case c.Holds(first, n):
	case n == 1:
		c.AddParts(first, g)
	default:
		c.addPrefix(n, g)
	}
}

// Folded is the number of shards, from shard 0 on, in the sum.
func (c *ShardSum) Folded() int { return c.folded }

// Sum is the running sum of the first Folded shards; the caller must not
// modify it, and it changes with the next Add.
func (c *ShardSum) Sum() []float32 {
	if c.whole != nil {
		return c.whole
	}
	if c.folded == 0 {
		clear(c.sum)
	}
	return c.sum
}

// fold adds g to the sum. The first shard of a step is added to zeros
// without clearing the sum first (Reset leaves it as it was): one pass
// over the sum a step instead of two. Each element is one addition
// whatever the pieces, so how g is cut does not change the bytes.
func (c *ShardSum) fold(g Parts) {
	off := 0
	for _, p := range g {
		dst := c.sum[off : off+len(p)]
		if c.folded == 0 {
			addToZero(dst, p)
		} else {
			addTo(dst, p)
		}
		off += len(p)
	}
	if c.folded == 0 {
		clear(c.sum[off:])
	}
	c.folded++
}

// Apply takes one optimizer step on weights with the mean gradient of the
// complete sum over count samples, as step number step, and resets the sum
// for the next step.
func (c *ShardSum) Apply(opt Optimizer, weights []float32, count int, step uint64) {
	scaleInto(c.sum, c.Sum(), 1/float32(count))
	opt.Apply(weights, c.sum, int64(step))
	c.Reset()
}

// addToGo is addTo element by element: dst[i] += src[i].
func addToGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// addToZeroGo is addToZero element by element: dst[i] = 0 + src[i].
func addToZeroGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = 0 + v
	}
}

// scaleByGo is scaleBy element by element: dst[i] *= k.
func scaleByGo(dst []float32, k float32) { scaleIntoGo(dst, dst, k) }

// scaleIntoGo is scaleInto element by element: dst[i] = src[i] * k.
func scaleIntoGo(dst, src []float32, k float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = v * k
	}
}

// Reset starts the next step. The sum's values stay until the first shard
// of the step replaces them (see fold).
func (c *ShardSum) Reset() {
	clear(c.got)
	c.folded = 0
	c.whole = nil
}
