// Package f32le converts float32 vectors to and from consecutive
// little-endian bytes, the form gradients and weights travel in and their
// digest is defined over. On little-endian machines the bytes are the
// vector's memory, so a conversion is one copy (or none, with View).
package f32le

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// native reports whether this machine stores float32s as little-endian
// bytes.
var native = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// View returns v's memory as its little-endian bytes, without copying, and
// true; on a big-endian machine it returns nil and false.
func View(v []float32) ([]byte, bool) {
	if !native {
		return nil, false
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)), true
}

// Floats returns the float32s whose little-endian bytes b holds, in b's
// own memory, and true: writing one writes b. It returns nil and false on
// a big-endian machine, or where b does not start on a float32's
// alignment or its length is not a multiple of 4.
func Floats(b []byte) ([]float32, bool) {
	p := unsafe.SliceData(b)
	if !native || len(b)%4 != 0 || uintptr(unsafe.Pointer(p))%unsafe.Alignof(float32(0)) != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), len(b)/4), true
}

// Append appends v's little-endian bytes to b.
func Append(b []byte, v []float32) []byte {
	if p, ok := View(v); ok {
		return append(b, p...)
	}
	return appendPortable(b, v)
}

// Decode fills dst from the little-endian bytes p, which holds 4*len(dst).
func Decode(dst []float32, p []byte) {
	if d, ok := View(dst); ok {
		copy(d, p)
		return
	}
	decodePortable(dst, p)
}

func appendPortable(b []byte, v []float32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func decodePortable(dst []float32, p []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
}
