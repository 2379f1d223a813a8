package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// snapshots writes the snapshot workers start from (weights and optimizer
// state) to the state object store, in the background: the step loop does
// not wait for it, and until the new one is stored workers start from the
// previous one and replay a few more steps of gradients. Only the newest
// snapshot not yet written is kept, so they are written in step order and
// a slow store never queues more than one.
type snapshots struct {
	obs        jetstream.ObjectStore
	maxPayload int64 // the server's: chunks must fit it
	log        *slog.Logger
	room       *roomGuard // hears of refusals for want of room
	trim       *trimmer   // hears how every snapshot write ended
	now        func() time.Time
	next       chan *protocol.Params // the newest snapshot not yet written

	mu     sync.Mutex
	newest uint64        // step of the newest snapshot offered, plus one
	ended  uint64        // step of the newest snapshot whose write ended, plus one
	wrote  chan struct{} // closed, and replaced, as each write ends
}

func newSnapshots(obs jetstream.ObjectStore, maxPayload int64, log *slog.Logger, room *roomGuard, trim *trimmer, now func() time.Time) *snapshots {
	return &snapshots{obs: obs, maxPayload: maxPayload, log: log, room: room, trim: trim, now: now, next: make(chan *protocol.Params, 1),
		wrote: make(chan struct{})}
}

// offered reports whether a snapshot of step (or a later one) has been
// offered.
func (s *snapshots) offered(step uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newest > step
}

// flush waits until the write of the newest snapshot offered has ended,
// stored or not, and the trimmer has heard of it; or until ctx ends.
func (s *snapshots) flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		done, ch := s.ended >= s.newest, s.wrote
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// offer hands p to the writer, in place of any snapshot still waiting. It
// is called from the step loop only.
func (s *snapshots) offer(p *protocol.Params) {
	s.mu.Lock()
	s.newest = max(s.newest, p.Step+1)
	s.mu.Unlock()
	for {
		select {
		case s.next <- p:
			return
		default:
		}
		select {
		case <-s.next:
		default:
		}
	}
}

// loop writes snapshots until ctx ends.
func (s *snapshots) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.next:
			s.write(ctx, p)
		}
	}
}

func (s *snapshots) write(ctx context.Context, p *protocol.Params) {
	err := protocol.PutSnapshot(ctx, s.obs, p, s.maxPayload)
	s.trim.snapshotWritten(ctx, p.Step, err)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("coordinator: storing the snapshot workers start from failed; they replay from the previous one", "run", p.Run, "step", p.Step, "err", err)
		s.room.refused(err, s.now())
	}
	s.mu.Lock()
	s.ended = max(s.ended, p.Step+1)
	close(s.wrote)
	s.wrote = make(chan struct{})
	s.mu.Unlock()
}
