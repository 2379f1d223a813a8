package f32le

import (
	"bytes"
	"math"
	"testing"
)

// The memory path and the byte-by-byte path (what a big-endian machine
// runs) give the same bytes and the same values, special values included.
func TestMemoryAndPortablePathsAgree(t *testing.T) {
	v := []float32{0, float32(math.Copysign(0, -1)), 1, -2.5, 1e-45, math.MaxFloat32, float32(math.Inf(-1)), float32(math.NaN())}
	got := Append([]byte{7}, v)
	want := appendPortable([]byte{7}, v)
	if !bytes.Equal(got, want) {
		t.Fatalf("Append %x, byte by byte %x", got, want)
	}
	a, b := make([]float32, len(v)), make([]float32, len(v))
	Decode(a, got[1:])
	decodePortable(b, got[1:])
	for i := range v {
		if math.Float32bits(a[i]) != math.Float32bits(v[i]) || math.Float32bits(b[i]) != math.Float32bits(v[i]) {
			t.Fatalf("value %d: decoded %x and %x, want %x", i, math.Float32bits(a[i]), math.Float32bits(b[i]), math.Float32bits(v[i]))
		}
	}
}
