package protocol

// MarshalBinary encodes p.
func (p *Params) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, 64+len(p.Run)+4*len(p.Weights)+len(p.OptState)))
}

// AppendBinary appends the encoding of p to b.
func (p *Params) AppendBinary(b []byte) ([]byte, error) {
	w := appendWriter(b, KindParams)
	w.str(p.Run)
	w.u64(p.Step)
	w.u32(p.Epoch)
	w.raw(p.Check[:])
	w.f32s(p.Weights)
	w.bytes(p.OptState)
	return w.b, nil
}

// UnmarshalBinary decodes and validates a commit record or a snapshot, into
// p.Weights's backing array when that is large enough.
func (p *Params) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindParams)
	p.Run = r.str("run", MaxRunLen)
	p.Step = r.u64("step")
	p.Epoch = r.u32("epoch")
	copy(p.Check[:], r.take(8, "check"))
	p.Weights = r.f32s("weights", MaxParameters, p.Weights)
	p.OptState = r.bytes("optimizer state", MaxOptState)
	if err := r.end(); err != nil {
		return err
	}
	return p.Validate()
}
