package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"
)

// Weights hashes the values' bytes in one piece, whatever the length, and
// so does the chunked path (the one big-endian machines take), however the
// chunks fall.
func TestWeightsIsTheSHA256OfTheBytes(t *testing.T) {
	for _, n := range []int{0, 1, 1023, 1024, 1025, 5000} {
		w := make([]float32, n)
		b := make([]byte, 4*n)
		for i := range w {
			w[i] = float32(i)*0.37 - 11
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(w[i]))
		}
		want := sha256.Sum256(b)
		if got := Weights(w); got != want {
			t.Errorf("n=%d: %x, want %x", n, got, want)
		}
		if got := inChunks(w); got != want {
			t.Errorf("n=%d in chunks: %x, want %x", n, got, want)
		}
	}
}

func BenchmarkWeights(b *testing.B) {
	w := make([]float32, 203530) // the default MLP
	for i := range w {
		w[i] = float32(i) * 1e-3
	}
	b.SetBytes(int64(4 * len(w)))
	for b.Loop() {
		Weights(w)
	}
}
