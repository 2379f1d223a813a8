// Package digest computes the two identities of a weights vector, both over
// its values as consecutive little-endian float32s:
//
//   - Weights, the sha256, names weights where they are kept or reported:
//     checkpoint manifests, `coordinator inspect`, the end of a run.
//   - Check, the 64-bit XXH3, names a weights version while it is trained:
//     every commit record carries it, every gradient names the version it
//     was computed on by it, and replicas compare theirs with the
//     coordinator's after every step. It guards against a replica that
//     stepped differently, not against an adversary, and hashes the 800 KB
//     of the default model in 9 µs (in cache) where the sha256 takes half a
//     millisecond.
package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/zeebo/xxh3"

	"github.com/jettrain/jettrain/internal/f32le"
)

// Weights is the sha256 of w as little-endian float32 bytes. On
// little-endian machines it hashes w's memory in place.
func Weights(w []float32) [32]byte {
	if b, ok := f32le.View(w); ok {
		return sha256.Sum256(b)
	}
	var d [32]byte
	inChunks(sha256.New(), w).Sum(d[:0])
	return d
}

// Check is the XXH3 64-bit hash (seed 0) of w as little-endian float32
// bytes, big-endian.
func Check(w []float32) (c [8]byte) {
	var h uint64
	if b, ok := f32le.View(w); ok {
		h = xxh3.Hash(b)
	} else {
		h = inChunks(xxh3.New(), w).(*xxh3.Hasher).Sum64()
	}
	binary.BigEndian.PutUint64(c[:], h)
	return c
}

// inChunks writes w's bytes to h a few thousand at a time, converted into
// a small buffer, and returns h.
func inChunks(h hash.Hash, w []float32) hash.Hash {
	buf := make([]byte, 0, 4096)
	for len(w) > 0 {
		k := min(len(w), cap(buf)/4)
		h.Write(f32le.Append(buf[:0], w[:k]))
		w = w[k:]
	}
	return h
}
