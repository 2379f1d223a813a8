package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoRoom is the NATS server refusing, for longer than noRoomGrace, to
// store the run's messages for want of room: its disk is full, or its
// JetStream store reached the limit it was given (by default the room its
// disk had when it started). Training cannot go on until room is made; the
// run resumes from its newest checkpoint, with the gradients stored before,
// when the coordinator starts again.
var ErrNoRoom = errors.New("coordinator: the NATS server has no room left in its store")

// noRoomGrace is how long refusals for want of room are retried before the
// run stops: trimming the grads stream after a checkpoint, or an operator,
// may make room meanwhile.
const noRoomGrace = 10 * time.Second

// The JetStream API's codes for a store without room (nats-server's
// errors.json): insufficient resources, and insufficient storage or memory
// resources available.
const (
	jsInsufficientResources    jetstream.ErrorCode = 10023
	jsMemoryResourcesExceeded  jetstream.ErrorCode = 10028
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// isNoRoom reports whether err is the server refusing to store for want of
// room.
func isNoRoom(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsInsufficientResources, jsMemoryResourcesExceeded, jsStorageResourcesExceeded:
		return true
	}
	return false
}

// roomGuard decides when refusals for want of room end a run: when no step
// has been committed for noRoomGrace since the first refusal. Refusals come
// from the step loop's publishes and from the snapshot writer; a server
// that refuses only large messages (a gradient, a snapshot) may still take
// the small ones (tasks, commit records), so the test is that the run no
// longer moves, not that every publish fails.
type roomGuard struct {
	log   *slog.Logger
	mu    sync.Mutex
	since time.Time // the first refusal not yet outlived by a commit
	err   error     // that refusal
}

// refused notes the outcome err of a store operation at now; the first
// refusal for want of room since the last commit is warned of.
func (g *roomGuard) refused(err error, now time.Time) {
	if !isNoRoom(err) {
		return
	}
	g.mu.Lock()
	first := g.since.IsZero()
	if first {
		g.since, g.err = now, err
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
// first refusal is noRoomGrace old with no commit since.
func (g *roomGuard) expired(now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.since.IsZero() || now.Sub(g.since) < noRoomGrace {
		return nil
	}
	return fmt.Errorf("%w (%v)", ErrNoRoom, g.err)
}
