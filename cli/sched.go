package cli

import (
	"errors"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/jettrain/jettrain/internal/cpusched"
)

// schedFlag adds --sched, the process's CPU scheduling policy.
func schedFlag(fs *pflag.FlagSet, v *string) {
	fs.StringVar(v, "sched", string(cpusched.PolicyBatch),
		"CPU scheduling policy: batch (SCHED_BATCH on Linux: a waking thread does not preempt the one computing) or normal")
}

// applySched puts the process under the policy --sched names, before it
// starts any server or child process (they inherit it). An unknown name is
// an error. A policy the system refuses (a sandbox that forbids the system
// call) costs only speed: a warning, and the run goes on; a system without
// batch scheduling gets a debug line.
func applySched(name string, log *slog.Logger) error {
	p, err := cpusched.ParsePolicy(name)
	if err != nil {
		return err
	}
	switch err := cpusched.Apply(p); {
	case errors.Is(err, cpusched.ErrUnsupported):
		log.Debug("scheduling policy left as it is", "err", err)
	case err != nil:
		log.Warn("scheduling policy left as it is (--sched normal does not try)", "err", err)
	}
	return nil
}
