package protocol

import (
	"encoding/binary"
	"errors"
	"math"
	"unicode/utf8"

	"github.com/jettrain/jettrain/internal/f32le"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("protocol: malformed message")

// writer appends the wire encoding of fields to a byte slice.
type writer struct{ b []byte }

func newWriter(kind Kind, size int) *writer {
	return appendWriter(make([]byte, 0, size+2), kind)
}

// appendWriter starts a message of kind at the end of b.
func appendWriter(b []byte, kind Kind) *writer {
	return &writer{b: append(b, Version, byte(kind))}
}

func (w *writer) u16(v uint16)  { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)  { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)  { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *writer) f64(v float64) { w.u64(math.Float64bits(v)) }
func (w *writer) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *writer) raw(p []byte) { w.b = append(w.b, p...) }
func (w *writer) length(n int) { w.b = binary.AppendUvarint(w.b, uint64(n)) }
func (w *writer) bytes(p []byte) {
	w.b = binary.AppendUvarint(w.b, uint64(len(p)))
	w.b = append(w.b, p...)
}
func (w *writer) i32s(v []int32) {
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	for _, x := range v {
		w.b = binary.LittleEndian.AppendUint32(w.b, uint32(x))
	}
}
func (w *writer) f32s(v []float32) {
	w.b = binary.AppendUvarint(w.b, uint64(len(v)))
	w.b = f32le.Append(w.b, v)
}

// reader consumes fields; the first error sticks and later reads return zero.
type reader struct {
	b   []byte
	err error
}

func newReader(b []byte, kind Kind) *reader {
	r := &reader{b: b}
	if len(b) < 2 {
		r.fail("message of %d bytes is shorter than its header", len(b))
		return r
	}
	if b[0] != Version {
		r.fail("codec version %d, want %d", b[0], Version)
		return r
	}
	if Kind(b[1]) != kind {
		r.fail("message kind %d, want %d", b[1], kind)
		return r
	}
	r.b = b[2:]
	return r
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = malformed(format, args...)
	}
	r.b = nil
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail("%s: need %d bytes, have %d", what, n, len(r.b))
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}
func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (r *reader) u64(what string) uint64 {
	if p := r.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) f64(what string) float64 {
	v := math.Float64frombits(r.u64(what))
	if r.err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		r.fail("%s is not finite", what)
	}
	return v
}

func (r *reader) length(what string, max int, elem int) int {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail("%s: bad length", what)
		return 0
	}
	if k != uvarintLen(n) {
		r.fail("%s: non-canonical length", what)
		return 0
	}
	r.b = r.b[k:]
	if n > uint64(max) {
		r.fail("%s: length %d exceeds %d", what, n, max)
		return 0
	}
	if uint64(len(r.b)) < n*uint64(elem) {
		r.fail("%s: length %d but %d bytes left", what, n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) str(what string, max int) string {
	n := r.length(what, max, 1)
	p := r.take(n, what)
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(p) {
		r.fail("%s is not UTF-8", what)
		return ""
	}
	return string(p)
}

// bytes decodes a byte string into a fresh slice (nil when empty).
func (r *reader) bytes(what string, max int) []byte {
	n := r.length(what, max, 1)
	p := r.take(n, what)
	if r.err != nil || n == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (r *reader) i32s(what string, max int) []int32 {
	n := r.length(what, max, 4)
	p := r.take(4*n, what)
	if r.err != nil {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return v
}

// f32s decodes a tensor into dst's backing array when it is large enough.
func (r *reader) f32s(what string, max int, dst []float32) []float32 {
	n := r.length(what, max, 4)
	p := r.take(4*n, what)
	if r.err != nil {
		return nil
	}
	if n == 0 {
		return nil // the same value whether or not dst was reused
	}
	if i := f32le.FirstNonFinite(p); i >= 0 {
		r.fail("%s[%d] is not finite", what, i)
		return nil
	}
	v := dst[:0]
	if cap(v) < n {
		v = make([]float32, n)
	}
	v = v[:n]
	f32le.Decode(v, p)
	return v
}

func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}
