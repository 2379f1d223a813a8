package chaos

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Kind is a kind of fault the harness injects.
type Kind int

const (
	// WorkerKill SIGKILLs a worker and starts it again after a pause.
	WorkerKill Kind = iota
	// CoordinatorKill SIGKILLs the leading coordinator, whatever it is
	// doing (mid-step, mid-checkpoint, mid-replay), and starts its slot
	// again; the standby, if any, takes over when the lease expires.
	CoordinatorKill
	// NATSRestart SIGKILLs a NATS server (the only one, or one of the
	// cluster's three) and starts it again on the same port and store.
	NATSRestart
	// S3Outage SIGKILLs versitygw, keeps it down for a few seconds while
	// training goes on, and starts it again on the same port and data.
	S3Outage
	// CheckpointDamage overwrites the run's newest checkpoint object with
	// junk and then SIGKILLs the leading coordinator: the next one falls
	// back to the previous checkpoint and recomputes the steps to the
	// damaged one (the grads stream no longer holds their gradients). It
	// is drawn only when asked for (-kinds).
	CheckpointDamage
)

// Kinds lists every fault kind, in table order.
var Kinds = []Kind{WorkerKill, CoordinatorKill, NATSRestart, S3Outage, CheckpointDamage}

// defaultKinds are the kinds drawn from when none are asked for.
var defaultKinds = []Kind{WorkerKill, CoordinatorKill, NATSRestart, S3Outage}

var kindNames = [...]string{"worker", "coordinator", "nats", "s3", "checkpoint"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// ParseKinds reads a comma-separated list such as "worker,nats".
func ParseKinds(s string) ([]Kind, error) {
	var out []Kind
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		found := false
		for k, name := range kindNames {
			if w == name {
				out, found = append(out, Kind(k)), true
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: fault kind %q, want one of %s", ErrInvalidOption, w, strings.Join(kindNames[:], ", "))
		}
	}
	return out, nil
}

// fault is one planned injection. It happens Jitter after the run has
// committed a gap of steps past the step it had reached once the previous
// fault was recovered, so faults spread over the whole run and land at any
// point inside a step. The gap adapts to the steps left, less those that
// recoveries are expected to take, since outages cost a varying number of
// steps: see gap and runOnce.
type fault struct {
	Kind   Kind
	Spread float64 // in [0, 1): where the gap falls in its range
	Jitter time.Duration
	Down   time.Duration // how long the node stays dead
	Pick   uint64        // chooses among candidate nodes (mod their count)
}

func (f fault) String() string {
	return fmt.Sprintf("%s, spread %.2f + %v, down %v", f.Kind, f.Spread, f.Jitter, f.Down)
}

// gap is how many steps to let pass before f when stepsLeft steps remain
// for faultsLeft faults (f included): between 1 and twice an even share of
// half the steps left, so the faults fit in the run with room to spare.
func (f fault) gap(stepsLeft uint64, faultsLeft int) uint64 {
	share := float64(stepsLeft) / float64(2*max(faultsLeft, 1))
	return 1 + uint64(f.Spread*max(2*share-1, 0))
}

// downRange is how long each kind of node stays dead. Workers and
// coordinators come back in the background; a NATS fault holds the plan
// while the server is down; the store also stays down until a checkpoint
// save has failed.
var downRange = [...][2]time.Duration{
	WorkerKill:       {100 * time.Millisecond, 3 * time.Second},
	CoordinatorKill:  {0, 3 * time.Second},
	NATSRestart:      {200 * time.Millisecond, 2 * time.Second},
	S3Outage:         {0, 500 * time.Millisecond},
	CheckpointDamage: {0, 3 * time.Second},
}

// plan draws n faults from a PCG seeded with seed: kinds in shuffled
// rounds (every kind once per round, so a short plan still covers them
// all), gap spreads, and jitters up to two step times (stepTime, as
// measured in the fault-free run) so a kill lands anywhere inside a step.
// The same arguments always give the same plan.
func plan(seed uint64, n int, kinds []Kind, stepTime time.Duration) []fault {
	maxJitter := max(2*stepTime, time.Millisecond)
	r := rand.New(rand.NewPCG(seed, 0x6a657474726169))
	out := make([]fault, 0, n)
	var round []Kind
	for len(out) < n {
		if len(round) == 0 {
			round = append([]Kind(nil), kinds...)
			r.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		k := round[0]
		round = round[1:]
		lo, hi := downRange[k][0], downRange[k][1]
		out = append(out, fault{
			Kind:   k,
			Spread: r.Float64(),
			Jitter: time.Duration(r.Int64N(int64(maxJitter))),
			Down:   lo + time.Duration(r.Int64N(int64(hi-lo)+1)),
			Pick:   r.Uint64(),
		})
	}
	return out
}
