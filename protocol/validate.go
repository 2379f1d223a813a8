package protocol

import "fmt"

// ValidRun reports whether s can be a run signature: 1 to MaxRunLen
// characters of [0-9a-z-], safe inside a NATS subject token.
func ValidRun(s string) bool {
	if len(s) == 0 || len(s) > MaxRunLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

func checkRun(r *reader, run string) {
	if r.err == nil && !ValidRun(run) {
		r.fail("run %q is not a run signature", run)
	}
}

func checkShard(r *reader, shard, shards uint16) {
	if r.err == nil && (shards == 0 || shards > MaxShards || shard >= shards) {
		r.fail("shard %d of %d out of range", shard, shards)
	}
}

// Validate reports whether t could have been produced by a coordinator.
func (t *Task) Validate() error {
	w := &reader{}
	checkRun(w, t.Run)
	checkShard(w, t.Shard, t.Shards)
	if w.err == nil && len(t.Indices) == 0 {
		w.fail("task has no samples")
	}
	for i, x := range t.Indices {
		if w.err == nil && x < 0 {
			w.fail("index %d is negative (%d)", i, x)
		}
	}
	return w.err
}

// Validate reports whether g could have been produced by a worker.
func (g *Grad) Validate() error {
	w := &reader{}
	checkRun(w, g.Run)
	if w.err == nil && len(g.Worker) > MaxWorkerLen {
		w.fail("worker id of %d bytes", len(g.Worker))
	}
	if w.err == nil && g.Count == 0 {
		w.fail("gradient over zero samples")
	}
	if w.err == nil && g.Correct > g.Count {
		w.fail("%d correct of %d samples", g.Correct, g.Count)
	}
	if w.err == nil && (g.LossSum < 0 || g.LossSum != g.LossSum) {
		w.fail("loss sum %v", g.LossSum)
	}
	if w.err == nil && len(g.Grad) == 0 {
		w.fail("empty gradient")
	}
	return w.err
}

// Validate reports whether p is a well-formed weights version. It does not
// recompute the digest; callers that use the weights compare it themselves.
func (p *Params) Validate() error {
	w := &reader{}
	checkRun(w, p.Run)
	if w.err == nil && len(p.Weights) == 0 {
		w.fail("no weights")
	}
	return w.err
}

// ShortDigest returns the prefix of a weights digest carried by a Grad.
func ShortDigest(d [32]byte) (s [8]byte) {
	copy(s[:], d[:8])
	return s
}

// String names a task for logs.
func (t *Task) String() string {
	return fmt.Sprintf("%s step %d shard %d/%d", t.Run, t.Step, t.Shard, t.Shards)
}
