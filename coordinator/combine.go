package coordinator

import "github.com/jettrain/jettrain/protocol"

// combiner sums the shard gradients of one step in shard order, folding
// each in as soon as every shard before it has arrived. The sum is the same
// sequence of float32 additions as adding all shards at the end — (((0 +
// g0) + g1) + g2) + … — so it does not matter when or in which order the
// gradients arrive, but most of the work is done while the last shards are
// still being computed. A gradient that arrives ahead of its turn is copied
// into a buffer the combiner owns; it never keeps the caller's slices.
type combiner struct {
	sum    []float32
	got    []bool
	stats  []shardStats
	ahead  [][]float32 // gradients waiting for an earlier shard, by shard
	folded int         // shards [0, folded) are in sum
}

type shardStats struct {
	loss           float64
	correct, count uint32
}

func newCombiner(shards, size int) *combiner {
	return &combiner{sum: make([]float32, size), got: make([]bool, shards), stats: make([]shardStats, shards), ahead: make([][]float32, shards)}
}

func (c *combiner) has(shard int) bool { return c.got[shard] }

// complete reports whether every shard has been folded in.
func (c *combiner) complete() bool { return c.folded == len(c.got) }

// add takes shard g.Shard's gradient, which must not have been added yet.
func (c *combiner) add(g *protocol.Grad) {
	s := int(g.Shard)
	c.got[s] = true
	c.stats[s] = shardStats{loss: g.LossSum, correct: g.Correct, count: g.Count}
	if s != c.folded {
		if c.ahead[s] == nil {
			c.ahead[s] = make([]float32, len(c.sum))
		}
		copy(c.ahead[s], g.Grad)
		return
	}
	c.fold(g.Grad)
	for c.folded < len(c.got) && c.got[c.folded] {
		c.fold(c.ahead[c.folded])
	}
}

func (c *combiner) fold(g []float32) {
	sum := c.sum[:len(g)]
	for i, v := range g {
		sum[i] += v
	}
	c.folded++
}

// reset starts the next step.
func (c *combiner) reset() {
	clear(c.sum)
	clear(c.got)
	c.folded = 0
}
