package cpusched

import (
	"errors"
	"fmt"
)

// ErrUnsupported is what Batch returns where the system has no batch
// policy.
var ErrUnsupported = errors.New("cpusched: batch scheduling is not supported on this system")

// Policy names a scheduling policy a command accepts (its --sched flag).
type Policy string

// The policies.
const (
	PolicyBatch  Policy = "batch"  // SCHED_BATCH: threads that wake do not preempt
	PolicyNormal Policy = "normal" // the system's default, left as it is
)

// ParsePolicy validates a --sched value.
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyBatch, PolicyNormal:
		return p, nil
	}
	return "", fmt.Errorf("cpusched: unknown scheduling policy %q, want %q or %q", s, PolicyBatch, PolicyNormal)
}

// Apply puts the process under p: Batch for PolicyBatch, nothing for
// PolicyNormal.
func Apply(p Policy) error {
	if p == PolicyBatch {
		return Batch()
	}
	return nil
}
