package model

import (
	"math/bits"
	"math/rand/v2"
)

// permStream tags the PCG streams of the data order ("perm" in ASCII).
const permStream = 0x7065726d << 32

// Permutation is the sample order of an epoch, a pure function of (seed, epoch, n):
//
//	src := rand.NewPCG(seed, 0x7065726d<<32 + uint64(epoch))   // math/rand/v2, output fixed by spec
//	perm := [0, 1, ..., n-1]
//	for i := n-1; i > 0; i-- {
//		j, _ := bits.Mul64(src.Uint64(), uint64(i+1))        // j uniform in [0, i] (bias < 2^-32)
//		perm[i], perm[j] = perm[j], perm[i]
//	}
//
// The shuffle is written out here rather than using rand.Shuffle so that only the PCG
// specification, not a library's choice of algorithm, fixes the order.
func Permutation(seed uint64, epoch int, n int) []int32 {
	if n <= 0 {
		return []int32{}
	}
	src := rand.NewPCG(seed, permStream+uint64(epoch))
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := n - 1; i > 0; i-- {
		j, _ := bits.Mul64(src.Uint64(), uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}

// StepsPerEpoch is the number of full batches in n samples; the partial last batch is
// dropped (its samples are seen in other epochs' orders).
func StepsPerEpoch(n, batch int) int {
	if n <= 0 || batch <= 0 {
		return 0
	}
	return n / batch
}

// BatchIndices returns a copy of the sample indices of step stepInEpoch:
// perm[stepInEpoch*batch : (stepInEpoch+1)*batch].
func BatchIndices(perm []int32, stepInEpoch, batch int) []int32 {
	lo := stepInEpoch * batch
	return append([]int32(nil), perm[lo:lo+batch]...)
}

// ShardIndices is the part of perm, the epoch's sample order, that shard
// (of shards) of step stepInEpoch trains on at batch size batch: the
// coordinator's task for it carries a copy. It does not copy.
func ShardIndices(perm []int32, stepInEpoch, batch, shards, shard int) []int32 {
	lo, hi := ShardRange(batch, shards, shard)
	start := stepInEpoch * batch
	return perm[start+lo : start+hi]
}

// ShardRange is the half-open range [lo, hi) of shard (0-based) when a batch is split into
// shards contiguous parts: the first batch%shards shards have one sample more than the rest.
func ShardRange(batch, shards, shard int) (lo, hi int) {
	base, rem := batch/shards, batch%shards
	lo = shard*base + min(shard, rem)
	hi = lo + base
	if shard < rem {
		hi++
	}
	return lo, hi
}
