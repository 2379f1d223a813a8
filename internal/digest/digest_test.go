package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"

	"github.com/zeebo/xxh3"
)

// le is w's values as little-endian bytes.
func le(w []float32) []byte {
	b := make([]byte, 4*len(w))
	for i, x := range w {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func values(n int) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(i)*0.37 - 11
	}
	return w
}

// Weights hashes the values' bytes in one piece, whatever the length, and
// so does the chunked path (the one big-endian machines take), however the
// chunks fall.
func TestWeightsIsTheSHA256OfTheBytes(t *testing.T) {
	for _, n := range []int{0, 1, 1023, 1024, 1025, 5000} {
		w := values(n)
		want := sha256.Sum256(le(w))
		if got := Weights(w); got != want {
			t.Errorf("n=%d: %x, want %x", n, got, want)
		}
		var got [32]byte
		if inChunks(sha256.New(), w).Sum(got[:0]); got != want {
			t.Errorf("n=%d in chunks: %x, want %x", n, got, want)
		}
	}
}

// Check is XXH3-64 with seed 0 of the same bytes, in one piece and in
// chunks; the empty vector's check is the published XXH3 test vector, so
// checks cannot change with the library.
func TestCheckIsTheXXH3OfTheBytes(t *testing.T) {
	if got, want := Check(nil), [8]byte{0x2d, 0x06, 0x80, 0x05, 0x38, 0xd3, 0x94, 0xc2}; got != want {
		t.Fatalf("check of no weights %x, want XXH3-64(\"\") = %x", got, want)
	}
	for _, n := range []int{1, 60, 1023, 1024, 1025, 5000} {
		w := values(n)
		var want [8]byte
		binary.BigEndian.PutUint64(want[:], xxh3.Hash(le(w)))
		if got := Check(w); got != want {
			t.Errorf("n=%d: %x, want %x", n, got, want)
		}
		var got [8]byte
		binary.BigEndian.PutUint64(got[:], inChunks(xxh3.New(), w).(*xxh3.Hasher).Sum64())
		if got != want {
			t.Errorf("n=%d in chunks: %x, want %x", n, got, want)
		}
		w[n/2] = math.Nextafter32(w[n/2], 0)
		if Check(w) == want {
			t.Errorf("n=%d: one value one ulp smaller has the same check", n)
		}
	}
}

func BenchmarkWeights(b *testing.B) {
	w := values(203530) // the default MLP
	b.SetBytes(int64(4 * len(w)))
	for b.Loop() {
		Weights(w)
	}
}

func BenchmarkCheck(b *testing.B) {
	w := values(203530)
	b.SetBytes(int64(4 * len(w)))
	for b.Loop() {
		Check(w)
	}
}
