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

// malformed builds a validation error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func checkRun(run string) error {
	if !ValidRun(run) {
		return malformed("run %q is not a run signature", run)
	}
	return nil
}

// Validate reports whether t could have been produced by a coordinator.
func (t *Task) Validate() error {
	if err := checkRun(t.Run); err != nil {
		return err
	}
	if t.Shards == 0 || t.Shards > MaxShards || t.Shard >= t.Shards {
		return malformed("shard %d of %d out of range", t.Shard, t.Shards)
	}
	if len(t.Indices) == 0 {
		return malformed("task has no samples")
	}
	for i, x := range t.Indices {
		if x < 0 {
			return malformed("index %d is negative (%d)", i, x)
		}
	}
	return nil
}

// Validate reports whether g could have been produced by a worker.
func (g *Grad) Validate() error {
	switch err := checkRun(g.Run); {
	case err != nil:
		return err
	case len(g.Worker) > MaxWorkerLen:
		return malformed("worker id of %d bytes", len(g.Worker))
	case len(g.Stats) == 0:
		return malformed("gradient of no shard")
	case len(g.Stats) > 1 && g.Shard != 0:
		return malformed("%d shards from shard %d: several shards start at shard 0", len(g.Stats), g.Shard)
	case int(g.Shard)+len(g.Stats) > MaxShards:
		return malformed("shards %d..%d out of range", g.Shard, int(g.Shard)+len(g.Stats)-1)
	case len(g.Grad) == 0:
		return malformed("empty gradient")
	}
	for i, st := range g.Stats {
		switch {
		case st.Count == 0:
			return malformed("shard %d: gradient over zero samples", int(g.Shard)+i)
		case st.Correct > st.Count:
			return malformed("shard %d: %d correct of %d samples", int(g.Shard)+i, st.Correct, st.Count)
		case st.LossSum < 0 || st.LossSum != st.LossSum:
			return malformed("shard %d: loss sum %v", int(g.Shard)+i, st.LossSum)
		}
	}
	return nil
}

// Validate reports whether p is a well-formed commit record or snapshot. It
// does not recompute the check; callers that use the weights compare it
// themselves.
func (p *Params) Validate() error {
	if err := checkRun(p.Run); err != nil {
		return err
	}
	if len(p.Weights) == 0 && len(p.OptState) > 0 {
		return malformed("optimizer state without weights")
	}
	return nil
}

// String names a task for logs.
func (t *Task) String() string {
	return fmt.Sprintf("%s step %d shard %d/%d", t.Run, t.Step, t.Shard, t.Shards)
}
