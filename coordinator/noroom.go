package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// ErrNoRoom is the NATS server refusing to store the run's messages for
// want of room while the run cannot move: its disk is full, its JetStream
// store reached the limit it was given (by default most of the room its
// disk had when it started), or the account reached its quota. Training
// cannot go on until room is made; the run resumes from its newest
// checkpoint, with the gradients stored before, when the coordinator
// starts again.
var ErrNoRoom = errors.New("coordinator: the NATS server has no room left in its store")

// noRoomGrace is the least time refusals for want of room are ridden out
// before the run stops: trimming the grads stream after a checkpoint, or
// an operator, may make room meanwhile.
const noRoomGrace = 10 * time.Second

// noRoom wraps the server's refusal in ErrNoRoom.
func noRoom(refusal error) error {
	return fmt.Errorf("%w (%v)", ErrNoRoom, refusal)
}

// asNoRoom returns err as ErrNoRoom if it is the server's refusal for want
// of room, and err itself otherwise.
func asNoRoom(err error) error {
	if apiErr := protocol.NoRoomError(err); apiErr != nil && !errors.Is(err, ErrNoRoom) {
		return noRoom(apiErr)
	}
	return err
}

// roomGuard decides when refusals for want of room end a run: when no step
// has been committed for the grace since the first refusal. Refusals come
// from the step loop's publishes, from the snapshot writer, and from the
// workers, whose refused gradients they report on RefusalSubject. A server
// past its own limit refuses every message, but one past an account's
// quota may still take the small ones (tasks, commit records) while it
// refuses gradients and snapshots, so the test is that the run no longer
// moves, not that every publish fails.
type roomGuard struct {
	log   *slog.Logger
	mu    sync.Mutex
	since time.Time           // the first refusal not yet outlived by a commit
	err   *jetstream.APIError // that refusal
}

// refused notes the outcome err of a store operation at now; the first
// refusal for want of room since the last commit is warned of.
func (g *roomGuard) refused(err error, now time.Time) {
	apiErr := protocol.NoRoomError(err)
	if apiErr == nil {
		return
	}
	g.mu.Lock()
	first := g.since.IsZero()
	if first {
		g.since, g.err = now, apiErr
	}
	g.mu.Unlock()
	if first {
		g.log.Warn("coordinator: the NATS server has no room left in its store; the run stops unless a step goes through within the grace (trimming the grads stream after a checkpoint may make room)", "grace", noRoomGrace, "err", err)
	}
}

// committed notes that a step went through: there was room after all.
func (g *roomGuard) committed() {
	g.mu.Lock()
	g.since, g.err = time.Time{}, nil
	g.mu.Unlock()
}

// expired returns the error that ends the run at now (ErrNoRoom), if the
// first refusal is grace old, or noRoomGrace if that is longer, with no
// commit since. A run whose steps take long passes a longer grace, so one
// refusal does not end it before its next step could.
func (g *roomGuard) expired(now time.Time, grace time.Duration) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since.IsZero() || now.Sub(g.since) < max(grace, noRoomGrace) {
		return nil
	}
	return noRoom(g.err)
}
