package protocol

import (
	"bytes"
	"testing"

	"github.com/jettrain/jettrain/internal/f32le"
)

// inPlace lays g's values out at at in a buffer, as a sender summing into
// it would, and points g at them.
func inPlace(t *testing.T, g *Grad, at int) []byte {
	t.Helper()
	buf := make([]byte, at+4*len(g.Grad)+8)
	v, ok := f32le.Floats(buf[at : at+4*len(g.Grad)])
	if !ok {
		t.Skip("this machine does not store float32s as their little-endian bytes: there is no in-place encoding")
	}
	copy(v, g.Grad)
	g.Grad = v
	return buf
}

// A gradient encoded around its values holds the bytes MarshalBinary
// gives, for a one-shard gradient and a sum of shards alike.
func TestEncodingInPlaceIsTheEncoding(t *testing.T) {
	for name, g := range map[string]*Grad{"shard": sampleGrad(), "prefix": samplePrefix()} {
		want, _ := g.MarshalBinary()
		buf := inPlace(t, g, 128)
		got, ok := g.EncodeInPlace(buf, 128)
		if !ok {
			t.Fatalf("%s: not encoded in place", name)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: in place %x, want %x", name, got, want)
		}
		if &got[len(got)-1] != &buf[128+4*len(g.Grad)-1] {
			t.Fatalf("%s: the message is not in the buffer", name)
		}
		var back Grad
		if err := back.UnmarshalBinary(got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// Values that are not where the buffer says, or a header that does not fit
// before them, are refused, and the buffer is left as it was.
func TestEncodingInPlaceRefusesWhatDoesNotFit(t *testing.T) {
	g := sampleGrad()
	buf := inPlace(t, g, 64)
	before := bytes.Clone(buf)
	if _, ok := g.EncodeInPlace(buf, 68); ok {
		t.Error("encoded values 4 bytes away from where they are")
	}
	other := sampleGrad()
	if _, ok := other.EncodeInPlace(buf, 64); ok {
		t.Error("encoded values held outside the buffer")
	}
	long := sampleGrad()
	long.Worker = string(bytes.Repeat([]byte("w"), 60))
	buf2 := inPlace(t, long, 64)
	before2 := bytes.Clone(buf2)
	if _, ok := long.EncodeInPlace(buf2, 64); ok {
		t.Error("encoded a header longer than the room before the values")
	}
	if !bytes.Equal(buf, before) || !bytes.Equal(buf2, before2) {
		t.Error("a refused encoding wrote to the buffer")
	}
}

// BenchmarkGradEncode is a worker's side of a gradient of the default MLP
// (784-256-10): appended to a reused buffer, a copy of its values, or
// encoded around them where they were summed, the header alone written.
func BenchmarkGradEncode(b *testing.B) {
	const n = 203530
	b.Run("append", func(b *testing.B) {
		g := sampleGrad()
		g.Grad = make([]float32, n)
		buf := make([]byte, 0, 1024+4*n)
		b.SetBytes(4 * n)
		for b.Loop() {
			buf, _ = g.AppendBinary(buf[:0])
		}
	})
	b.Run("in-place", func(b *testing.B) {
		g := sampleGrad()
		g.Grad = make([]float32, n)
		buf := make([]byte, 512+4*n)
		v, ok := f32le.Floats(buf[512:])
		if !ok {
			b.Skip("no in-place encoding on this machine")
		}
		g.Grad = v
		b.SetBytes(4 * n)
		for b.Loop() {
			if _, ok := g.EncodeInPlace(buf, 512); !ok {
				b.Fatal("not encoded in place")
			}
		}
	})
}
