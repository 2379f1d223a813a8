// Package digest computes the identity of a weights vector: the sha256 of
// its values as consecutive little-endian float32s. The model, the
// coordinator's weights versions and the checkpoint manifests all name
// weights by it.
package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"unsafe"
)

// littleEndian reports whether float32s sit in memory as the bytes the
// digest is defined over, so they can be hashed where they are.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Weights is the sha256 of w as little-endian float32 bytes.
func Weights(w []float32) [32]byte {
	if littleEndian {
		return sha256.Sum256(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), 4*len(w)))
	}
	h := sha256.New()
	var buf [4096]byte
	for len(w) > 0 {
		k := min(len(w), len(buf)/4)
		for i, v := range w[:k] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf[:4*k])
		w = w[k:]
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}
