package protocol

// MarshalBinary encodes t.
func (t *Task) MarshalBinary() ([]byte, error) {
	w := newWriter(KindTask, 32+len(t.Run)+4*len(t.Indices))
	w.str(t.Run)
	w.u64(t.Step)
	w.u32(t.Epoch)
	w.u16(t.Shard)
	w.u16(t.Shards)
	w.i32s(t.Indices)
	return w.b, nil
}

// UnmarshalBinary decodes and validates a task.
func (t *Task) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindTask)
	t.Run = r.str("run", MaxRunLen)
	t.Step = r.u64("step")
	t.Epoch = r.u32("epoch")
	t.Shard = r.u16("shard")
	t.Shards = r.u16("shards")
	t.Indices = r.i32s("indices", MaxIndices)
	if err := r.end(); err != nil {
		return err
	}
	return t.Validate()
}
