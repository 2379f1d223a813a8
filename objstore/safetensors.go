package objstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Tensor is a named float32 array in row-major order. A nil or empty Shape
// is a scalar holding one value.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// safetensors layout: u64 little-endian header length N, N bytes of JSON
// header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}
// (optionally "__metadata__": {string: string}), then the data buffer the
// offsets index, every byte of it belonging to exactly one tensor.
const (
	safetensorsMaxHeader = 100 << 20
	safetensorsMetadata  = "__metadata__"
)

// WriteSafetensors writes tensors in the safetensors format (dtype F32,
// little-endian), sorted by name so the same tensors always give the same
// bytes; the header is padded with spaces to a multiple of 8 bytes. Names
// must be unique, non-empty UTF-8 and not "__metadata__"; every Data must
// hold exactly the product of its Shape. Errors wrap ErrInvalid.
func WriteSafetensors(w io.Writer, tensors []Tensor) error {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return tensors[order[a]].Name < tensors[order[b]].Name })
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	var offset uint64
	for n, i := range order {
		t := &tensors[i]
		if t.Name == "" || t.Name == safetensorsMetadata || !utf8.ValidString(t.Name) {
			return fmt.Errorf("%w: safetensors: bad tensor name %q", ErrInvalid, t.Name)
		}
		if n > 0 && tensors[order[n-1]].Name == t.Name {
			return fmt.Errorf("%w: safetensors: duplicate tensor name %q", ErrInvalid, t.Name)
		}
		count := uint64(1)
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("%w: safetensors: tensor %q: negative dimension in shape %v", ErrInvalid, t.Name, t.Shape)
			}
			count *= uint64(d)
		}
		if count != uint64(len(t.Data)) {
			return fmt.Errorf("%w: safetensors: tensor %q: shape %v holds %d values, data has %d", ErrInvalid, t.Name, t.Shape, count, len(t.Data))
		}
		if n > 0 {
			hdr.WriteByte(',')
		}
		name, _ := json.Marshal(t.Name)
		hdr.Write(name)
		hdr.WriteString(`:{"dtype":"F32","shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				hdr.WriteByte(',')
			}
			hdr.WriteString(strconv.Itoa(d))
		}
		end := offset + 4*count
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(hdr.Len()))
	bw.Write(n[:])
	bw.Write(hdr.Bytes())
	var buf [4]byte
	for _, i := range order {
		for _, v := range tensors[i].Data {
			binary.LittleEndian.PutUint32(buf[:], math.Float32bits(v))
			bw.Write(buf[:])
		}
	}
	return bw.Flush()
}

type safetensorsEntry struct {
	Dtype       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
}

// ReadSafetensors reads a safetensors file of F32 tensors (other dtypes are
// rejected) and returns them sorted by name. It checks the header strictly:
// no duplicate names, offsets matching shapes, a data buffer covered
// exactly with no holes, overlaps or trailing bytes. Errors wrap ErrCorrupt.
func ReadSafetensors(r io.Reader) ([]Tensor, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, stErr("reading the header length: %v", err)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size < 2 || size > safetensorsMaxHeader {
		return nil, stErr("header length %d out of range", size)
	}
	hdr, err := io.ReadAll(io.LimitReader(r, int64(size)))
	if err != nil {
		return nil, stErr("reading the header: %v", err)
	}
	if uint64(len(hdr)) != size {
		return nil, stErr("header truncated at %d of %d bytes", len(hdr), size)
	}
	names, entries, err := parseSafetensorsHeader(hdr)
	if err != nil {
		return nil, err
	}
	// Check that the offsets tile [0, total) exactly.
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := entries[order[a]], entries[order[b]]
		if ea.DataOffsets[0] != eb.DataOffsets[0] {
			return ea.DataOffsets[0] < eb.DataOffsets[0]
		}
		return ea.DataOffsets[1] < eb.DataOffsets[1]
	})
	var total uint64
	for _, i := range order {
		e := entries[i]
		if e.DataOffsets[0] != total {
			return nil, stErr("tensor %q starts at byte %d, expected %d (hole or overlap)", names[i], e.DataOffsets[0], total)
		}
		total = e.DataOffsets[1]
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(min(total, math.MaxInt64-1))+1))
	if err != nil {
		return nil, stErr("reading the data: %v", err)
	}
	if uint64(len(data)) != total {
		return nil, stErr("data buffer has %d bytes or more, the header indexes %d", len(data), total)
	}
	tensors := make([]Tensor, len(names))
	for i := range names {
		e := entries[i]
		t := Tensor{Name: names[i], Shape: make([]int, len(e.Shape)), Data: make([]float32, (e.DataOffsets[1]-e.DataOffsets[0])/4)}
		for j, d := range e.Shape {
			t.Shape[j] = int(d)
		}
		raw := data[e.DataOffsets[0]:e.DataOffsets[1]]
		for j := range t.Data {
			t.Data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		tensors[i] = t
	}
	sort.Slice(tensors, func(a, b int) bool { return tensors[a].Name < tensors[b].Name })
	return tensors, nil
}

func parseSafetensorsHeader(hdr []byte) ([]string, []safetensorsEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, stErr("header is not a JSON object")
	}
	var names []string
	var entries []safetensorsEntry
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, stErr("header: %v", err)
		}
		name, _ := tok.(string)
		if seen[name] {
			return nil, nil, stErr("duplicate key %q", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, stErr("header value of %q: %v", name, err)
		}
		if name == safetensorsMetadata {
			var meta map[string]string
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, stErr("__metadata__ is not a string map: %v", err)
			}
			continue
		}
		if name == "" {
			return nil, nil, stErr("empty tensor name")
		}
		e, err := parseSafetensorsEntry(name, raw)
		if err != nil {
			return nil, nil, err
		}
		names = append(names, name)
		entries = append(entries, e)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, nil, stErr("header object is not closed")
	}
	rest := hdr[dec.InputOffset():]
	if len(bytes.TrimRight(rest, " ")) != 0 {
		return nil, nil, stErr("trailing bytes after the header object")
	}
	return names, entries, nil
}

func parseSafetensorsEntry(name string, raw []byte) (safetensorsEntry, error) {
	var e safetensorsEntry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return e, stErr("tensor %q: %v", name, err)
	}
	if e.Dtype != "F32" {
		return e, stErr("tensor %q: dtype %q, only F32 is supported", name, e.Dtype)
	}
	if e.Shape == nil {
		return e, stErr("tensor %q: no shape", name)
	}
	if len(e.DataOffsets) != 2 || e.DataOffsets[0] > e.DataOffsets[1] {
		return e, stErr("tensor %q: bad data_offsets %v", name, e.DataOffsets)
	}
	count := uint64(1)
	for _, d := range e.Shape {
		if d < 0 || d > math.MaxInt32 {
			return e, stErr("tensor %q: bad dimension %d", name, d)
		}
		if d != 0 && count > math.MaxInt64/4/uint64(d) {
			return e, stErr("tensor %q: shape %v too large", name, e.Shape)
		}
		count *= uint64(d)
	}
	if e.DataOffsets[1]-e.DataOffsets[0] != 4*count {
		return e, stErr("tensor %q: shape %v needs %d bytes, offsets give %d", name, e.Shape, 4*count, e.DataOffsets[1]-e.DataOffsets[0])
	}
	return e, nil
}

func stErr(format string, args ...any) error {
	return fmt.Errorf("%w: safetensors: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}
