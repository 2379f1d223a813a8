package protocol

// MarshalBinary encodes h.
func (h *Heartbeat) MarshalBinary() ([]byte, error) {
	w := newWriter(KindHeartbeat, 16+len(h.Worker))
	w.str(h.Worker)
	w.u64(h.Tasks)
	return w.b, nil
}

// UnmarshalBinary decodes a heartbeat.
func (h *Heartbeat) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindHeartbeat)
	h.Worker = r.str("worker", MaxWorkerLen)
	h.Tasks = r.u64("tasks")
	if err := r.end(); err != nil {
		return err
	}
	if h.Worker == "" {
		return malformed("heartbeat without worker id")
	}
	return nil
}
