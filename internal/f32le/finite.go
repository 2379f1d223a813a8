package f32le

import "encoding/binary"

// Two little-endian float32s read as one uint64: their exponent fields, and
// the bit above each that adding 1 to an all-ones exponent carries into.
const (
	pairExponents = 0x7f800000_7f800000
	pairExpOne    = 0x00800000_00800000
	pairCarries   = 0x80000000_80000000
	exponent      = 0x7f800000 // of one float32
)

// FirstNonFinite returns the index of the first NaN or infinity among the
// float32s p holds as little-endian bytes (len(p)/4 of them), or -1 if all
// are finite. It tests two values per 64-bit word without a branch per
// value: a float32 is not finite when its exponent bits are all ones, and
// then adding one to the exponent field carries into the sign bit's place.
// The carry cannot reach the other value of the pair.
func FirstNonFinite(p []byte) int {
	n := len(p) / 4
	const block = 64 // bytes (16 values) tested before the one branch
	i := 0
	for ; i+block <= 4*n; i += block {
		b := p[i : i+block : i+block]
		acc := pair(b[0:]) | pair(b[8:]) | pair(b[16:]) | pair(b[24:]) |
			pair(b[32:]) | pair(b[40:]) | pair(b[48:]) | pair(b[56:])
		if acc&pairCarries != 0 {
			return firstNonFinite(p, i/4, n)
		}
	}
	return firstNonFinite(p, i/4, n)
}

// pair is the first 8 bytes of b with the carry bit of each float32 set
// when that value is not finite.
func pair(b []byte) uint64 {
	return binary.LittleEndian.Uint64(b)&pairExponents + pairExpOne
}

// firstNonFinite is FirstNonFinite's value-by-value search of values
// from..n-1.
func firstNonFinite(p []byte, from, n int) int {
	for k := from; k < n; k++ {
		if binary.LittleEndian.Uint32(p[4*k:])&exponent == exponent {
			return k
		}
	}
	return -1
}
