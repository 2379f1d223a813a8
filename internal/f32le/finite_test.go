package f32le

import (
	"encoding/binary"
	"math"
	"testing"
)

// firstNonFiniteReference is the definition FirstNonFinite must agree with.
func firstNonFiniteReference(p []byte) int {
	for k := 0; k < len(p)/4; k++ {
		x := float64(math.Float32frombits(binary.LittleEndian.Uint32(p[4*k:])))
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return k
		}
	}
	return -1
}

// A NaN or infinity at every position of every length up to a few blocks
// is found at its index, behind finite values that come as close as they
// can (the largest float32s, which have all exponent bits but one).
func TestFirstNonFiniteFindsEveryPosition(t *testing.T) {
	finite := []uint32{0, 0x80000000, 1, 0x3f800000, 0x7f7fffff, 0xff7fffff, 0x007fffff, 0xbf800000}
	bad := []uint32{0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff}
	for n := 0; n <= 70; n++ {
		p := make([]byte, 4*n+n%4) // trailing bytes short of a value are not one
		for k := 0; k < n; k++ {
			binary.LittleEndian.PutUint32(p[4*k:], finite[k%len(finite)])
		}
		for i := len(p) - n%4; i < len(p); i++ {
			p[i] = 0xff
		}
		if got := FirstNonFinite(p); got != -1 {
			t.Fatalf("%d finite values: FirstNonFinite = %d, want -1", n, got)
		}
		for at := 0; at < n; at++ {
			for _, b := range bad {
				q := append([]byte(nil), p...)
				binary.LittleEndian.PutUint32(q[4*at:], b)
				if got := FirstNonFinite(q); got != at {
					t.Fatalf("%d values, %08x at %d: FirstNonFinite = %d", n, b, at, got)
				}
				binary.LittleEndian.PutUint32(q[4*(n-1):], 0x7f800000) // a later one does not hide it
				if got := FirstNonFinite(q); got != at {
					t.Fatalf("%d values, %08x at %d and infinity last: FirstNonFinite = %d", n, b, at, got)
				}
			}
		}
	}
}

func FuzzFirstNonFinite(f *testing.F) {
	f.Add([]byte{0, 0, 0x80, 0x7f})
	f.Add(make([]byte, 67))
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, want := FirstNonFinite(p), firstNonFiniteReference(p); got != want {
			t.Fatalf("FirstNonFinite(%x) = %d, want %d", p, got, want)
		}
	})
}

func BenchmarkFirstNonFinite(b *testing.B) {
	p := Append(nil, make([]float32, 203530)) // the default MLP's gradient
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if FirstNonFinite(p) != -1 {
			b.Fatal("a zero is not finite")
		}
	}
}

func BenchmarkFirstNonFiniteByValue(b *testing.B) {
	p := Append(nil, make([]float32, 203530))
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if firstNonFinite(p, 0, len(p)/4) != -1 {
			b.Fatal("a zero is not finite")
		}
	}
}
