package model

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX is the file format of MNIST-like datasets: two zero bytes, a type byte (0x08 for
// unsigned bytes, the only type accepted here), the number of dimensions, each dimension
// as a big-endian uint32, then the data in row-major order.

// maxIDXBytes bounds the data an IDX file may declare (a corrupt header must not make the
// decoder allocate gigabytes).
const maxIDXBytes = 1 << 30

// errIDX is the cause of every IDX decoding error.
var errIDX = errors.New("not a valid IDX file")

// decodeIDX parses an uncompressed IDX file of unsigned bytes. It returns the dimensions and
// the data, which aliases b. The data must be exactly as long as the header says.
func decodeIDX(b []byte) (dims []int, data []byte, err error) {
	if len(b) < 4 {
		return nil, nil, fmt.Errorf("%w: %d bytes, shorter than the 4-byte magic", errIDX, len(b))
	}
	if b[0] != 0 || b[1] != 0 {
		return nil, nil, fmt.Errorf("%w: magic %x does not start with two zero bytes (is it still gzipped?)", errIDX, b[:4])
	}
	if b[2] != 0x08 {
		return nil, nil, fmt.Errorf("%w: element type 0x%02x, want 0x08 (unsigned byte)", errIDX, b[2])
	}
	nd := int(b[3])
	if nd < 1 || nd > 4 {
		return nil, nil, fmt.Errorf("%w: %d dimensions, want 1..4", errIDX, nd)
	}
	head := 4 + 4*nd
	if len(b) < head {
		return nil, nil, fmt.Errorf("%w: header truncated (%d bytes, want %d)", errIDX, len(b), head)
	}
	total := 1
	dims = make([]int, nd)
	for i := range dims {
		d := binary.BigEndian.Uint32(b[4+4*i:])
		if d == 0 || uint64(d) > maxIDXBytes || uint64(total)*uint64(d) > maxIDXBytes {
			return nil, nil, fmt.Errorf("%w: dimension %d is %d (data would be empty or over %d bytes)", errIDX, i, d, maxIDXBytes)
		}
		dims[i] = int(d)
		total *= int(d)
	}
	if len(b)-head != total {
		return nil, nil, fmt.Errorf("%w: %d data bytes, header %v says %d", errIDX, len(b)-head, dims, total)
	}
	return dims, b[head:], nil
}

// readIDX decodes raw file contents, gunzipping them first when they start with the gzip
// magic.
func readIDX(raw []byte) (dims []int, data []byte, err error) {
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", errIDX, err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxIDXBytes+64))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: gzip: %v", errIDX, err)
		}
	}
	return decodeIDX(raw)
}
