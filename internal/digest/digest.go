// Package digest computes the identity of a weights vector: the sha256 of
// its values as consecutive little-endian float32s. The model, the
// coordinator's weights versions and the checkpoint manifests all name
// weights by it.
package digest

import (
	"crypto/sha256"

	"github.com/jettrain/jettrain/internal/f32le"
)

// Weights is the sha256 of w as little-endian float32 bytes. On
// little-endian machines it hashes w's memory in place.
func Weights(w []float32) [32]byte {
	if b, ok := f32le.View(w); ok {
		return sha256.Sum256(b)
	}
	return inChunks(w)
}

// inChunks hashes w's bytes a few thousand at a time, converted into a
// small buffer.
func inChunks(w []float32) [32]byte {
	h := sha256.New()
	buf := make([]byte, 0, 4096)
	for len(w) > 0 {
		k := min(len(w), cap(buf)/4)
		h.Write(f32le.Append(buf[:0], w[:k]))
		w = w[k:]
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}
