package protocol

import "github.com/jettrain/jettrain/internal/f32le"

// MarshalBinary encodes g.
func (g *Grad) MarshalBinary() ([]byte, error) {
	return g.AppendBinary(make([]byte, 0, 64+len(g.Run)+len(g.Worker)+16*len(g.Stats)+4*len(g.Grad)))
}

// AppendBinary appends the encoding of g to b, so a sender can reuse one
// buffer for every gradient it publishes.
func (g *Grad) AppendBinary(b []byte) ([]byte, error) {
	w := appendWriter(b, KindGrad)
	w.gradHeader(g)
	w.f32s(g.Grad)
	return w.b, nil
}

// gradHeader writes what a gradient and each of its parts carry before
// their values.
func (w *writer) gradHeader(g *Grad) {
	w.str(g.Run)
	w.u64(g.Step)
	w.u16(g.Shard)
	w.str(g.Worker)
	w.raw(g.Weights[:])
	w.length(len(g.Stats))
	for _, st := range g.Stats {
		w.f64(st.LossSum)
		w.u32(st.Correct)
		w.u32(st.Count)
	}
}

// UnmarshalBinary decodes and validates a gradient. It decodes the values
// into g.Grad's backing array when that is large enough, so a reader can
// reuse one buffer for every gradient it receives.
func (g *Grad) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindGrad)
	r.gradHeader(g)
	g.Grad = r.f32s("gradient", MaxParameters, g.Grad)
	if err := r.end(); err != nil {
		return err
	}
	return g.Validate()
}

// gradHeader reads what writer.gradHeader wrote into g, reusing g.Stats.
func (r *reader) gradHeader(g *Grad) {
	g.Run = r.str("run", MaxRunLen)
	g.Step = r.u64("step")
	g.Shard = r.u16("shard")
	g.Worker = r.str("worker", MaxWorkerLen)
	copy(g.Weights[:], r.take(8, "weights check"))
	n := r.length("shard stats", MaxShards, 16)
	if r.err == nil {
		if cap(g.Stats) < n {
			g.Stats = make([]ShardStats, n)
		}
		g.Stats = g.Stats[:n]
		for i := range g.Stats {
			g.Stats[i] = ShardStats{LossSum: r.f64("loss sum"), Correct: r.u32("correct"), Count: r.u32("count")}
		}
	}
}

// EncodeInPlace encodes g around its values where they already are: g.Grad
// must be the values f32le.Floats views in buf[at:]. It writes the rest of
// the encoding into the at bytes before them and returns the message,
// the bytes MarshalBinary gives, in buf. A sender that sums a gradient in
// such a buffer so publishes it without copying it. It returns false, and
// writes nothing, where g.Grad is elsewhere or what comes before it does
// not fit in at bytes.
func (g *Grad) EncodeInPlace(buf []byte, at int) ([]byte, bool) {
	n := 4 * len(g.Grad)
	if at < 0 || at+n > len(buf) || n == 0 {
		return nil, false
	}
	if v, ok := f32le.Floats(buf[at : at+n]); !ok || &v[0] != &g.Grad[0] {
		return nil, false
	}
	var scratch [256]byte
	w := appendWriter(scratch[:0], KindGrad)
	w.gradHeader(g)
	w.length(len(g.Grad))
	if len(w.b) > at {
		return nil, false
	}
	start := at - len(w.b)
	copy(buf[start:], w.b)
	return buf[start : at+n], true
}
