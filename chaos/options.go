package chaos

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jettrain/jettrain/protocol"
)

// ErrInvalidOption is wrapped by errors about Options.
var ErrInvalidOption = errors.New("chaos: invalid option")

// Environment variables naming the server binaries (.ci/nats-server.sh and
// .ci/versitygw.sh install them).
const (
	EnvNATSServer = "JETTRAIN_NATS_SERVER"
	EnvVersitygw  = "JETTRAIN_VERSITYGW"
)

// Options configure a chaos experiment: a fault-free run and a run with
// faults, of the same config, on fresh servers each.
type Options struct {
	NATSServer  string // nats-server binary; default $JETTRAIN_NATS_SERVER
	Versitygw   string // versitygw binary; default $JETTRAIN_VERSITYGW
	Coordinator string // coordinator binary (see Build)
	Worker      string // worker binary (see Build)
	Dir         string // stores and logs go under it; must exist

	Seed   uint64 // seeds the fault plan
	Faults int    // faults to inject in the chaos run
	Kinds  []Kind // kinds to draw from; default all of Kinds but CheckpointDamage

	Epochs       int      // default 3
	Shards       int      // default 4
	BatchSize    int      // global batch; default 32 (more steps, so more moments to strike)
	Workers      int      // worker processes; default 3
	InProcess    int      // workers each coordinator runs in its own process (coordinator start --workers); default none
	Coordinators int      // coordinator processes: 1, or 2 for leader and hot standby (default)
	Cluster      bool     // a three-node NATS cluster and R3 streams instead of one server
	MaxPayload   int      // the NATS servers' max_payload in bytes; default protocol.MaxPayload (8 MiB)
	Sets         []string // more config overrides, key=value

	Timeout  time.Duration // bound on each of the two runs; default 15m
	Recovery time.Duration // bound on recovering from one fault; default 90s
	Log      io.Writer     // progress lines; default none
}

func (o *Options) defaults() error {
	if o.NATSServer == "" {
		o.NATSServer = os.Getenv(EnvNATSServer)
	}
	if o.Versitygw == "" {
		o.Versitygw = os.Getenv(EnvVersitygw)
	}
	if len(o.Kinds) == 0 {
		o.Kinds = defaultKinds
	}
	if o.Epochs == 0 {
		o.Epochs = 3
	}
	if o.Shards == 0 {
		o.Shards = 4
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.Workers == 0 {
		o.Workers = 3
	}
	if o.Coordinators == 0 {
		o.Coordinators = 2
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = protocol.MaxPayload
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Minute
	}
	if o.Recovery == 0 {
		o.Recovery = 90 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	for _, b := range []struct{ name, path string }{
		{"nats-server (" + EnvNATSServer + ")", o.NATSServer}, {"versitygw (" + EnvVersitygw + ")", o.Versitygw},
		{"coordinator", o.Coordinator}, {"worker", o.Worker},
	} {
		if b.path == "" {
			return fmt.Errorf("%w: no %s binary", ErrInvalidOption, b.name)
		}
		if _, err := os.Stat(b.path); err != nil {
			return fmt.Errorf("%w: %s binary: %v", ErrInvalidOption, b.name, err)
		}
	}
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: no directory", ErrInvalidOption)
	case o.Faults < 0 || o.Epochs < 1 || o.Shards < 1 || o.Workers < 1 || o.BatchSize < o.Shards:
		return fmt.Errorf("%w: faults %d, epochs %d, shards %d, batch size %d, workers %d", ErrInvalidOption, o.Faults, o.Epochs, o.Shards, o.BatchSize, o.Workers)
	case o.InProcess < 0:
		return fmt.Errorf("%w: %d in-process workers", ErrInvalidOption, o.InProcess)
	case o.Coordinators != 1 && o.Coordinators != 2:
		return fmt.Errorf("%w: %d coordinators, want 1 or 2", ErrInvalidOption, o.Coordinators)
	}
	return nil
}

// config is the run's config as --set flags: a small MLP on the synthetic
// dataset, so an epoch takes seconds.
func (o *Options) config() []string {
	sets := []string{
		"dataset=synthetic", "hidden=[32]", fmt.Sprintf("batch_size=%d", o.BatchSize),
		fmt.Sprintf("shards=%d", o.Shards), fmt.Sprintf("epochs=%d", o.Epochs), "checkpoint_every=10",
	}
	return append(sets, o.Sets...)
}
