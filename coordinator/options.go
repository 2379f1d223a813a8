package coordinator

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/telemetry"
)

// ErrInvalidOption is wrapped by errors from Options.validate.
var ErrInvalidOption = errors.New("coordinator: invalid option")

// Options configure a coordinator node.
type Options struct {
	Config   config.Config
	Run      string           // if set, the run the config must resolve to (--run)
	Replicas int              // stream replicas: 1, or 3 on a NATS cluster
	Log      *slog.Logger     // default slog.Default()
	Progress io.Writer        // where the per-epoch progress bar goes; nil = none
	Now      func() time.Time // clock for timings only; default time.Now
	Hooks    Hooks            // optional observation points
	ID       string           // coordinator id for the leader lease; default host-pid-space (defaultID)
	LeaseTTL time.Duration    // how long a dead leader blocks its standby; default 5s

	// AckWait is the workers' consumer's: how long a task a worker holds
	// without a word waits before the broker hands it to another. Set, it
	// replaces the consumer's (workers follow); 0 leaves an existing
	// consumer's as it is, and gives a new one protocol.DefaultAckWait.
	AckWait time.Duration

	// StatusEvery is how often the live status (coordinator status) is
	// written, live and while a restart recomputes steps; default 2s.
	StatusEvery time.Duration

	// Telemetry traces and measures the run; nil = none.
	Telemetry *telemetry.Provider

	// Handoff, when set, is shared with the workers in the same process
	// (worker.Options.Handoff): the node reads the grads stream's headers
	// only and takes those workers' gradients from it, sparing the broker
	// sending them back and the node reading them. Other gradients it
	// fetches from the stream one by one.
	Handoff *handoff.Exchange
}

// Hooks observe the node; every field may be nil.
type Hooks struct {
	Committed func(step uint64, check [8]byte) // after a step is applied (live or replayed)
	Saved     func(step uint64)                // after a checkpoint is committed
	EpochDone func(epoch int, trainLoss, validAcc float64)
	// Evaluated reports, from the evaluating goroutine, that an epoch's
	// evaluation has been computed; EpochDone follows once the node's loop
	// takes it in.
	Evaluated func(epoch int)
	// Redispatched reports shards of step handed out again as stragglers.
	Redispatched func(step uint64, shards []int)
}

func (o *Options) defaults() error {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ID == "" {
		o.ID = defaultID()
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StatusEvery == 0 {
		o.StatusEvery = 2 * time.Second
	}
	switch {
	case o.Replicas != 1 && o.Replicas != 3:
		return fmt.Errorf("%w: replicas %d, want 1 or 3", ErrInvalidOption, o.Replicas)
	case o.LeaseTTL < time.Second:
		return fmt.Errorf("%w: lease TTL %v is under a second", ErrInvalidOption, o.LeaseTTL)
	case o.AckWait < 0 || o.AckWait > 0 && o.AckWait < 100*time.Millisecond:
		return fmt.Errorf("%w: ack wait %v is too short", ErrInvalidOption, o.AckWait)
	case o.StatusEvery < time.Millisecond:
		return fmt.Errorf("%w: status interval %v is under a millisecond", ErrInvalidOption, o.StatusEvery)
	}
	return o.Config.Validate()
}
