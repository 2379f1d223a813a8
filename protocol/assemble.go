package protocol

import "slices"

// Assembler puts gradients sent in parts back together, whatever order the
// parts come in and whichever sender's copy of a part comes first: parts
// of one gradient are those naming the same run, step, shards, weights
// check and total, which makes them parts of the same values (the
// gradient is a pure function of them); a sender's worker id is the first
// part's. It keeps at most a set number of gradients in progress, dropping the one
// whose first part came earliest to make room (a sender that died midway
// leaves an incomplete one behind).
//
// An Assembler is not safe for concurrent use.
type Assembler struct {
	max     int
	size    int        // values in a gradient
	pending []*partial // in the order their first parts came
	run     string     // parts of run's steps before from are ignored (DropBefore)
	from    uint64
	part    GradPart // the part Decode read last
}

type partial struct {
	g       Grad
	first   uint64 // sequence of its first part
	have    []span // values received, sorted and merged
	covered int
}

// span is the values [from, to).
type span struct{ from, to int }

// NewAssembler returns an assembler of gradients of size values (the
// network's: parts of gradients of another size are ignored, and so never
// cost a buffer of the size they claim), keeping at most limit of them (at
// least 1) in progress.
func NewAssembler(limit, size int) *Assembler { return &Assembler{max: max(limit, 1), size: size} }

// add takes a validated part that came with sequence seq (the grads
// stream's, or any increasing count). When it completes a gradient, add
// returns it — the caller's from then on — and the sequence of its first
// part. A part of a gradient of another size, or of a step DropBefore
// dropped, is ignored.
func (a *Assembler) add(p *GradPart, seq uint64) (*Grad, uint64, bool) {
	if int(p.Total) != a.size || p.Run == a.run && p.Step < a.from {
		return nil, 0, false
	}
	i := slices.IndexFunc(a.pending, func(q *partial) bool { return q.holds(p) })
	if i < 0 {
		if len(a.pending) == a.max {
			a.pending = a.pending[1:]
		}
		q := &partial{first: seq, g: p.Grad}
		q.g.Stats = slices.Clone(p.Stats)
		q.g.Grad = make([]float32, p.Total)
		a.pending = append(a.pending, q)
		i = len(a.pending) - 1
	}
	q := a.pending[i]
	from := int(p.Offset)
	copy(q.g.Grad[from:], p.Grad.Grad)
	q.add(span{from, from + len(p.Grad.Grad)})
	if q.covered < len(q.g.Grad) {
		return nil, 0, false
	}
	a.pending = slices.Delete(a.pending, i, i+1)
	return &q.g, q.first, true
}

// Floor is the sequence of the earliest first part of a gradient in
// progress (0 if none): a reader that resumes after a later sequence would
// never complete it.
func (a *Assembler) Floor() uint64 {
	var f uint64
	for _, q := range a.pending {
		if f == 0 || q.first < f {
			f = q.first
		}
	}
	return f
}

// DropBefore forgets the gradients in progress of run's steps before step,
// and ignores their parts from then on: nobody waits for them any more.
func (a *Assembler) DropBefore(run string, step uint64) {
	a.run, a.from = run, step
	a.pending = slices.DeleteFunc(a.pending, func(q *partial) bool { return q.g.Run == run && q.g.Step < step })
}

// Decode decodes a grads-stream message, read at seq, into g: a whole
// gradient at once (decoded into g's buffers), a part only once it is the
// last of its gradient's to come. It reports whether g holds a gradient
// now and the sequence of its first message; err is a malformed message's.
func (a *Assembler) Decode(b []byte, seq uint64, g *Grad) (first uint64, ok bool, err error) {
	if !IsGradPart(b) {
		if err := g.UnmarshalBinary(b); err != nil {
			return 0, false, err
		}
		return seq, true, nil
	}
	if err := a.part.UnmarshalBinary(b); err != nil {
		return 0, false, err
	}
	whole, first, done := a.add(&a.part, seq)
	if done {
		*g = *whole
	}
	return first, done, nil
}

// inProgress is the number of gradients in progress.
func (a *Assembler) inProgress() int { return len(a.pending) }

func (q *partial) holds(p *GradPart) bool {
	return q.g.Run == p.Run && q.g.Step == p.Step && q.g.Shard == p.Shard && len(q.g.Stats) == len(p.Stats) &&
		q.g.Weights == p.Weights && len(q.g.Grad) == int(p.Total)
}

// add records s as received.
func (q *partial) add(s span) {
	if s.from >= s.to {
		return
	}
	i, _ := slices.BinarySearchFunc(q.have, s.from, func(h span, from int) int { return h.from - from })
	q.have = slices.Insert(q.have, i, s)
	merged := q.have[:0]
	q.covered = 0
	for _, h := range q.have {
		if n := len(merged); n > 0 && h.from <= merged[n-1].to {
			merged[n-1].to = max(merged[n-1].to, h.to)
			continue
		}
		merged = append(merged, h)
	}
	q.have = merged
	for _, h := range q.have {
		q.covered += h.to - h.from
	}
}
