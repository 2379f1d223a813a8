package model

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// specialValues are float32s where an addition or product is easiest to
// get wrong: signed zeros, subnormals, the extremes, values whose sum
// overflows or cancels, infinities and NaNs. Two NaNs count as the same
// value whatever their payloads: which operand's payload an x86 addition
// keeps depends on the order the compiler puts them in, and a step never
// sees a NaN (decoded gradients are checked finite).
var specialValues = []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1.1754942e-38, math.MaxFloat32, -math.MaxFloat32, 1, -1, 3e38, 0.1, -0.1,
	float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xffc00002)}

func vectorCase(seed uint64, n int) (dst, src []float32) {
	r := rand.New(rand.NewPCG(seed, 1))
	dst, src = make([]float32, n), make([]float32, n)
	for i := range n {
		if r.IntN(4) == 0 {
			dst[i], src[i] = specialValues[r.IntN(len(specialValues))], specialValues[r.IntN(len(specialValues))]
		} else {
			dst[i], src[i] = float32(r.NormFloat64()), float32(r.NormFloat64()*1e-3)
		}
	}
	return dst, src
}

// TestAddAndScaleSameBytesAsElementWise: the shard sum's addition and its
// scaling by 1/count, eight elements at a time where the CPU can, give the
// bytes of the element-wise code for every length and alignment.
func TestAddAndScaleSameBytesAsElementWise(t *testing.T) {
	if !avx2 {
		t.Skip("no vector loops on this machine: addTo and scaleBy are the element-wise code")
	}
	for n := 0; n <= 67; n++ {
		for off := 0; off < 3; off++ {
			dst, src := vectorCase(uint64(n*3+off), n+off)
			want := append([]float32(nil), dst...)
			zeroWant, zeroGot := append([]float32(nil), dst...), append([]float32(nil), dst...)
			addToZeroGo(zeroWant[off:], src[off:])
			addToZero(zeroGot[off:], src[off:])
			sameBits(t, "sum with zeros", zeroGot, zeroWant)
			addToGo(want[off:], src[off:])
			addTo(dst[off:], src[off:])
			sameBits(t, "sum", dst, want)
			for _, k := range []float32{1, 1.0 / 128, 1.0 / 3, 7e-39, 2, math.Float32frombits(0x7fc00003)} {
				into, intoWant := make([]float32, len(src)), make([]float32, len(src))
				scaleIntoGo(intoWant[off:], src[off:], k)
				scaleInto(into[off:], src[off:], k)
				sameBits(t, "scaled into another buffer", into, intoWant)
				scaleByGo(want[off:], k)
				scaleBy(dst[off:], k)
				sameBits(t, "scaled", dst, want)
			}
		}
	}
}

// TestAddToZeroIsAnAddition: adding to zeros is not a copy, on either
// path: -0 becomes +0, as on a sum cleared first.
func TestAddToZeroIsAnAddition(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	src := make([]float32, 19)
	for i := range src {
		src[i] = negZero
	}
	for name, add := range map[string]func(dst, src []float32){"element-wise": addToZeroGo, "vector": addToZero} {
		dst := make([]float32, len(src))
		for i := range dst {
			dst[i] = 5
		}
		add(dst, src)
		for i, v := range dst {
			if math.Float32bits(v) != 0 {
				t.Fatalf("%s: 0 + -0 at %d gave %v (%08x), want +0", name, i, v, math.Float32bits(v))
			}
		}
	}
}

// FuzzAddAndScale: any float32 bit patterns give the element-wise bytes.
func FuzzAddAndScale(f *testing.F) {
	f.Add(make([]byte, 8*19), float32(0.25))
	f.Fuzz(func(t *testing.T, raw []byte, k float32) {
		if !avx2 {
			t.Skip("no vector loops on this machine")
		}
		n := len(raw) / 8
		dst, src := make([]float32, n), make([]float32, n)
		for i := range n {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[8*i:]))
			src[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[8*i+4:]))
		}
		into, intoWant := make([]float32, n), make([]float32, n)
		scaleIntoGo(intoWant, src, k)
		scaleInto(into, src, k)
		sameBits(t, "scaled into another buffer", into, intoWant)
		want := append([]float32(nil), dst...)
		addToGo(want, src)
		addTo(dst, src)
		sameBits(t, "sum", dst, want)
		scaleByGo(want, k)
		scaleBy(dst, k)
		sameBits(t, "scaled", dst, want)
	})
}

// TestVectorLoopsKeepTheElementWiseNaNs: where both operands of an
// addition or a product are NaNs, x86 keeps the first one's payload, so on
// an amd64 machine the vector loops and the element-wise code (whose
// operands the compiler orders) agree on the payload only if they order
// every operation alike. The tests above let NaNs differ; this one does
// not, so a vector loop that swaps two operands fails here.
func TestVectorLoopsKeepTheElementWiseNaNs(t *testing.T) {
	if !avx2 {
		t.Skip("no vector loops on this machine: they are the element-wise code")
	}
	if raceBuild {
		// The element-wise code's operand order is the compiler's, and
		// with the race detector's instrumentation it orders Adam's
		// products otherwise: a NaN payload this build alone gives.
		t.Skip("the race detector's build orders the element-wise code's operands otherwise")
	}
	const n = 19 // two blocks of eight and a tail
	nans := func(base uint32) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(base + uint32(i)) // quiet NaNs, a payload each
		}
		return x
	}

	dst, src := nans(0x7fc00100), nans(0xffc00200)
	want := append([]float32(nil), dst...)
	addToGo(want, src)
	addTo(dst, src)
	sameNaNBits(t, "dst + src", dst, want)

	dst, want = nans(0x7fc00300), nans(0x7fc00300)
	k := math.Float32frombits(0xffc00400)
	scaleByGo(want, k)
	scaleBy(dst, k)
	sameNaNBits(t, "dst · k", dst, want)

	src, dst, want = nans(0x7fc00500), make([]float32, n), make([]float32, n)
	scaleIntoGo(want, src, k)
	scaleInto(dst, src, k)
	sameNaNBits(t, "src · k", dst, want)

	c := adamCase{w: nans(0x7fc00500), g: nans(0xffc00600), m: nans(0x7fc00700), v: nans(0xffc00800)}
	updateBothWays(t, c, &adamSteps()[0], sameNaNBits)
}
