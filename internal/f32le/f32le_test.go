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

// Floats views bytes as the values they encode: what Decode gives, and
// writing a value writes its bytes. A misaligned or ragged buffer is not
// viewed.
func TestFloatsIsTheBytesMemory(t *testing.T) {
	v := []float32{1, -2.5, float32(math.Inf(1)), 3e-40}
	b := make([]byte, 4+4*len(v))
	copy(b[4:], Append(nil, v))
	got, ok := Floats(b[4:])
	if !native {
		if ok {
			t.Fatal("Floats viewed bytes on a big-endian machine")
		}
		return
	}
	if !ok || len(got) != len(v) {
		t.Fatalf("Floats gave %d values, ok %v; want %d", len(got), ok, len(v))
	}
	for i := range v {
		if math.Float32bits(got[i]) != math.Float32bits(v[i]) {
			t.Fatalf("value %d: %v, want %v", i, got[i], v[i])
		}
	}
	got[1] = 7
	if !bytes.Equal(b[8:12], Append(nil, []float32{7})) {
		t.Fatalf("writing value 1 left its bytes %x", b[8:12])
	}
	if _, ok := Floats(b[1:5]); ok {
		t.Error("Floats viewed a misaligned buffer")
	}
	if _, ok := Floats(b[4:7]); ok {
		t.Error("Floats viewed 3 bytes")
	}
}
