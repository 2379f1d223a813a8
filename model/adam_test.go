package model

import (
	"encoding/binary"
	"math"
	"testing"
)

// adamCase is the state of one Adam update over n elements.
type adamCase struct{ w, g, m, v []float32 }

// special are values that take the unusual paths of float arithmetic:
// signed zeros, subnormals, the extremes of float32, and values whose
// squares underflow or overflow.
var special = []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-45, 1e-40, 1e-20, -1e-20, 1e20, -1e20,
	math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, 1, -1, 0.5}

func newAdamCase(seed uint64, n int) adamCase {
	c := adamCase{w: randVec(seed, n), g: randVec(seed+1, n), m: randVec(seed+2, n), v: randVec(seed+3, n)}
	for i := range c.v {
		c.m[i] *= 0.1
		c.v[i] = c.v[i] * c.v[i] * 0.01 // a second moment is never negative
		if i%5 == 0 {
			s := special[(int(seed)+i)%len(special)]
			switch i % 4 {
			case 0:
				c.w[i] = s
			case 1:
				c.g[i] = s
			case 2:
				c.m[i] = s
			default:
				c.v[i] = float32(math.Abs(float64(s)))
			}
		}
	}
	return c
}

func (c adamCase) clone() adamCase {
	cp := func(x []float32) []float32 { return append([]float32(nil), x...) }
	return adamCase{cp(c.w), cp(c.g), cp(c.m), cp(c.v)}
}

// sameBits compares float32s bit for bit; NaNs match any NaN (a run that
// produces one is lost anyway, and the processors differ in which payload
// they keep).
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	compareBits(t, what, got, want, true)
}

// sameNaNBits compares float32s bit for bit, NaN payloads included.
func sameNaNBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	compareBits(t, what, got, want, false)
}

func compareBits(t *testing.T, what string, got, want []float32, anyNaN bool) {
	t.Helper()
	for i := range want {
		bothNaN := got[i] != got[i] && want[i] != want[i]
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(anyNaN && bothNaN) {
			t.Fatalf("%s[%d] = %g (%08x), the element-wise update gives %g (%08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

func adamSteps() []adamStep {
	var out []adamStep
	for _, spec := range optimizerSpecs() {
		if spec.Name != OptAdam {
			continue
		}
		for _, step := range []int64{0, 1, 9, 1000} {
			out = append(out, newAdamStep(spec, step))
		}
	}
	return out
}

// updateBothWays takes an Adam step on c with the update this machine runs
// and on a copy with the element-wise reference, and compares the weights
// and moments of the two with same (sameBits or sameNaNBits).
func updateBothWays(t *testing.T, c adamCase, k *adamStep, same func(t *testing.T, what string, got, want []float32)) {
	t.Helper()
	want := c.clone()
	adamUpdateGo(want.w, want.g, want.m, want.v, k)
	adamUpdate(c.w, c.g, c.m, c.v, k)
	same(t, "w", c.w, want.w)
	same(t, "m", c.m, want.m)
	same(t, "v", c.v, want.v)
}

// TestAdamUpdateSameBytesAsElementWise: the update this machine runs (eight
// elements at a time where the CPU can) gives the bytes of the element-wise
// reference, for every length and alignment, special values included —
// the weights of a run do not depend on the processor's vector width.
func TestAdamUpdateSameBytesAsElementWise(t *testing.T) {
	if !avx2 {
		t.Skip("no vector update on this machine: adamUpdate is the element-wise code")
	}
	for _, k := range adamSteps() {
		for n := 0; n <= 67; n++ {
			for off := 0; off < 3; off++ {
				c := newAdamCase(uint64(n*7+off), n+off)
				updateBothWays(t, adamCase{c.w[off:], c.g[off:], c.m[off:], c.v[off:]}, &k, sameBits)
			}
		}
	}
}

// FuzzAdamUpdate: any float32 bit patterns for weights, gradient and
// moments give the element-wise reference's bytes.
func FuzzAdamUpdate(f *testing.F) {
	f.Add(make([]byte, 16*17), uint8(0))
	seed := newAdamCase(5, 24)
	var b []byte
	for i := range seed.w {
		for _, x := range []float32{seed.w[i], seed.g[i], seed.m[i], seed.v[i]} {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	f.Add(b, uint8(3))
	steps := adamSteps()
	f.Fuzz(func(t *testing.T, raw []byte, which uint8) {
		if !avx2 {
			t.Skip("no vector update on this machine")
		}
		n := len(raw) / 16
		c := adamCase{make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)}
		for i := range n {
			at := func(j int) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(raw[16*i+4*j:])) }
			c.w[i], c.g[i], c.m[i], c.v[i] = at(0), at(1), at(2), at(3)
		}
		updateBothWays(t, c, &steps[int(which)%len(steps)], sameBits)
	})
}
