package protocol

import (
	"fmt"
	"strings"
)

// partSlack covers a part's value count (a uvarint) past its header.
const partSlack = 16

// HeaderRoom is what a gradient message leaves of the server's max payload
// for its NATS headers (the message id and WorkerHeader, a few hundred
// bytes at most), which the server counts against the limit too:
// publishers pass AppendParts the max payload less this.
const HeaderRoom = 1024

// PartOverhead is the most a message carrying a part of a gradient of
// shards shards takes besides its values: HeaderRoom, and the part's
// header with a run and a worker id as long as the decoders take. A max
// payload must hold it and some values, as a coordinator checks at start.
func PartOverhead(shards int) int {
	g := Grad{Run: strings.Repeat("r", MaxRunLen), Worker: strings.Repeat("w", MaxWorkerLen), Stats: make([]ShardStats, shards)}
	return HeaderRoom + g.partHeaderLen() + partSlack
}

// Encoded is one message AppendParts wrote: it ends at End in the buffer
// and carries the values [Offset, Offset+Values) of the gradient (all of
// them, when it is the only one).
type Encoded struct{ End, Offset, Values int }

// AppendParts appends the encoding of g to b as one message when it fits
// maxPayload bytes, and otherwise as GradParts of as many values as fit,
// in order. A part needs room for its header (run, ids, shard statistics)
// and one value at least.
func (g *Grad) AppendParts(b []byte, maxPayload int) ([]byte, []Encoded, error) {
	start := len(b)
	b, err := g.AppendBinary(b)
	if err != nil {
		return b[:start], nil, err
	}
	if len(b)-start <= maxPayload {
		return b, []Encoded{{End: len(b), Values: len(g.Grad)}}, nil
	}
	b = b[:start]
	header := g.partHeaderLen()
	per := (maxPayload - header - partSlack) / 4
	if per < 1 {
		return b, nil, fmt.Errorf("protocol: a max payload of %d bytes holds no part of a gradient (its header is %d bytes)", maxPayload, header)
	}
	msgs := make([]Encoded, 0, (len(g.Grad)+per-1)/per)
	for off := 0; off < len(g.Grad); off += per {
		p := GradPart{Grad: *g, Offset: uint32(off), Total: uint32(len(g.Grad))}
		p.Grad.Grad = g.Grad[off:min(off+per, len(g.Grad))]
		b, _ = p.AppendBinary(b)
		msgs = append(msgs, Encoded{End: len(b), Offset: off, Values: len(p.Grad.Grad)})
	}
	return b, msgs, nil
}

// partHeaderLen is the length of a part of g before its values.
func (g *Grad) partHeaderLen() int {
	w := appendWriter(nil, KindGradPart)
	w.gradHeader(g)
	w.u32(0)
	w.u32(0)
	return len(w.b)
}

// AppendBinary appends the encoding of p to b.
func (p *GradPart) AppendBinary(b []byte) ([]byte, error) {
	w := appendWriter(b, KindGradPart)
	w.gradHeader(&p.Grad)
	w.u32(p.Offset)
	w.u32(p.Total)
	w.f32s(p.Grad.Grad)
	return w.b, nil
}

// MarshalBinary encodes p.
func (p *GradPart) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// UnmarshalBinary decodes and validates a part, reusing p's buffers as
// Grad.UnmarshalBinary does.
func (p *GradPart) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindGradPart)
	r.gradHeader(&p.Grad)
	p.Offset = r.u32("offset")
	p.Total = r.u32("total")
	p.Grad.Grad = r.f32s("gradient part", MaxParameters, p.Grad.Grad)
	if err := r.end(); err != nil {
		return err
	}
	return p.Validate()
}

// Validate reports whether p is a well-formed part: a well-formed gradient
// whose values lie within its total.
func (p *GradPart) Validate() error {
	if err := p.Grad.Validate(); err != nil {
		return err
	}
	switch {
	case p.Total > MaxParameters:
		return malformed("gradient of %d values, over %d", p.Total, MaxParameters)
	case uint64(p.Offset)+uint64(len(p.Grad.Grad)) > uint64(p.Total):
		return malformed("values %d..%d of a gradient of %d", p.Offset, uint64(p.Offset)+uint64(len(p.Grad.Grad))-1, p.Total)
	}
	return nil
}

// IsGradPart reports whether b is (or claims to be) a GradPart rather than
// a whole Grad: what a reader of the grads stream decodes it as.
func IsGradPart(b []byte) bool {
	return len(b) >= 2 && b[0] == Version && Kind(b[1]) == KindGradPart
}
