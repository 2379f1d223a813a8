package worker

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// inbox collects the gradients other workers publish for a run's current
// step and the step after it, as they arrive by subscription, so a replica
// can step forward without fetching them. It keeps at most one gradient per
// (step, shard), decoded into buffers it reuses from step to step.
type inbox struct {
	run  string
	size int // values in a gradient

	mu         sync.Mutex
	base       uint64        // the step of slots[0]; slots[1] holds base+1
	slots      [2][]gradSlot // by shard
	arrived    chan struct{} // closed and replaced on every arrival
	sub        *nats.Subscription
	nc         *nats.Conn
	parts      *protocol.Assembler // gradients arriving in parts (with no sequences: the inbox asks for no Floor)
	leave      func()              // leaves the Peers the inbox joined, if any
	peersTaken *atomic.Uint64      // counts the offers decoded (Peers.Taken)
	closed     bool                // by close: offers are let go at once

	// What the subscription has shown (see covers): it received a
	// gradient of step liveAfter, and newest is the latest step it
	// received one of; both start over when the connection may have lost
	// messages, which dropped and reconnects tell. heard is whether it has
	// received any (see alone).
	live       bool
	liveAfter  uint64
	newest     uint64
	dropped    int
	reconnects uint64
	heard      bool
}

type gradSlot struct {
	have bool
	g    protocol.Grad

	// A peer's gradient offered in memory (Peers), not decoded yet: the
	// replica decodes it when it takes it, and then calls release.
	raw     []byte
	release func()
}

// let releases the slot's offered bytes, if it holds any.
func (s *gradSlot) let() {
	if s.release != nil {
		s.release()
	}
	s.raw, s.release = nil, nil
}

func newInbox(run string, shards, size int) *inbox {
	return &inbox{run: run, size: size, slots: [2][]gradSlot{make([]gradSlot, shards), make([]gradSlot, shards)}, arrived: make(chan struct{}),
		parts: protocol.NewAssembler(2*shards+2, size)}
}

// subscribe starts receiving the run's gradients on nc.
func (b *inbox) subscribe(nc *nats.Conn) error {
	sub, err := nc.Subscribe(protocol.GradsFilter(b.run), b.receive)
	if err != nil {
		return err
	}
	// Gradients are large: let a burst of a few steps queue rather than
	// count as a slow consumer.
	_ = sub.SetPendingLimits(1024, 256<<20)
	b.mu.Lock()
	b.sub, b.nc, b.reconnects = sub, nc, nc.Stats().Reconnects
	b.mu.Unlock()
	return nil
}

// covers reports whether the gradients of step can be expected to reach
// the inbox — by subscription, or offered by a peer (Peers) — so a
// replica waiting for one need not look
// for it in the grads stream at once (it looks after a poll's wait all the
// same: the proof below is good, not perfect — a late duplicate of an old
// step may be the first gradient received, and messages lost while
// disconnected count only once the client has reconnected). A gradient of a step is computed on the
// weights of that step, which take every gradient of the step before: so
// once the subscription has received a gradient of step t, every gradient
// of a later step was published while it listened (a peer's offers count
// as received: the inbox joins its Peers after it subscribes, and a peer
// offers every gradient it sends). That holds only at the
// run's live edge (a replica catching up waits for steps whose gradients
// were published before it subscribed, whatever arrives meanwhile), and
// only while the connection has dropped nothing: a reconnect, or messages
// dropped as a slow consumer, start the proof over.
func (b *inbox) covers(step uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sub == nil {
		return false
	}
	dropped, _ := b.sub.Dropped()
	if reconnects := b.nc.Stats().Reconnects; dropped != b.dropped || reconnects != b.reconnects {
		b.live, b.dropped, b.reconnects = false, dropped, reconnects
	}
	return b.live && step > b.liveAfter && step+1 >= b.newest
}

// alone reports whether the inbox has heard no gradient of the steps
// around step — none of step or the aloneSteps before it, and none later
// — so that no other worker seems to be computing this run's shards. It
// hears other workers by subscription and peers by their offers. Over a
// connection without nats.NoEcho it hears this worker's own gradients,
// and is never alone. Without a subscription it cannot tell, and says no.
func (b *inbox) alone(step uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sub != nil && (!b.heard || b.newest+aloneSteps < step)
}

// aloneSteps is how many steps without a gradient heard make a worker
// alone: a peer computing a shard of every step is heard every step.
const aloneSteps = 2

func (b *inbox) close() {
	if b.sub != nil {
		_ = b.sub.Unsubscribe()
	}
	if b.leave != nil {
		b.leave()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	clearSlots(b.slots[0])
	clearSlots(b.slots[1])
}

// receive is the subscription handler. Anything it cannot use — another
// step, a shard it has, a malformed message — it ignores: the replica
// fetches what it misses from the grads stream and judges it there. Parts
// of a gradient too large for one message are put together as they come.
func (b *inbox) receive(msg *nats.Msg) {
	step, shard, ok := gradSubjectStepShard(msg.Subject)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.arrive(step, shard, msg.Data)
}

// hear records that a gradient of step reached the inbox, for covers and
// alone. b.mu is held.
func (b *inbox) hear(step uint64) {
	if !b.live {
		b.live, b.liveAfter, b.newest, b.heard = true, step, step, true
	}
	b.newest = max(b.newest, step)
}

// arrive decodes data, a gradient of (step, shard) or a part of one, into
// its slot, if the inbox can use it, and reports whether that completed a
// gradient. It keeps none of data. b.mu is held.
func (b *inbox) arrive(step uint64, shard int, data []byte) bool {
	b.hear(step)
	i := step - b.base
	if step < b.base || i > 1 || shard >= len(b.slots[i]) || b.slots[i][shard].have || b.slots[i][shard].raw != nil {
		return false
	}
	s := &b.slots[i][shard]
	if _, ok, err := b.parts.Decode(data, 0, &s.g); err != nil || !ok || !fits(&s.g, b.run, step, shard, len(b.slots[i]), b.size) {
		return false
	}
	s.have = true
	b.signal()
	return true
}

// signal wakes whoever waits for an arrival. b.mu is held.
func (b *inbox) signal() {
	close(b.arrived)
	b.arrived = make(chan struct{})
}

// offer takes data, a peer's encoded gradient of (step, shard) in one
// message (Peers), to decode when the replica takes it; release is called
// once the inbox has let go of data. A gradient the inbox has, or cannot
// hold, is let go at once.
func (b *inbox) offer(step uint64, shard int, data []byte, release func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		release()
		return
	}
	b.hear(step)
	i := step - b.base
	if step < b.base || i > 1 || shard >= len(b.slots[i]) || b.slots[i][shard].have || b.slots[i][shard].raw != nil {
		release()
		return
	}
	s := &b.slots[i][shard]
	s.raw, s.release = data, release
	b.signal()
}

// offerParts takes the parts of a peer's gradient of (step, shard), each
// message in one of parts, and decodes them at once, as the subscription
// does: it keeps none of them.
func (b *inbox) offerParts(step uint64, shard int, parts [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, p := range parts {
		if b.arrive(step, shard, p) && b.peersTaken != nil {
			b.peersTaken.Add(1)
		}
	}
}

// decodeOffered decodes the gradient a peer offered in slot i of step's
// shard, if any, and lets go of its bytes. b.mu is held.
func (b *inbox) decodeOffered(step uint64, shard int) {
	s := &b.slots[0][shard]
	if s.raw == nil {
		return
	}
	_, ok, err := b.parts.Decode(s.raw, 0, &s.g)
	s.let()
	s.have = err == nil && ok && fits(&s.g, b.run, step, shard, len(b.slots[0]), b.size)
	if s.have && b.peersTaken != nil {
		b.peersTaken.Add(1)
	}
}

// fits reports whether g, decoded from the subject of (step, shard), is a
// gradient a replica of run can use there: of that run, step and first
// shard, covering shards within the step's, with a value per weight.
// Whether it was computed on the replica's weights is checked when it is
// taken.
func fits(g *protocol.Grad, run string, step uint64, shard, shards, size int) bool {
	return g.Run == run && g.Step == step && int(g.Shard) == shard && shard+g.Shards() <= shards && len(g.Grad) == size
}

// gradSubjectStepShard parses the step and shard of a GradSubject.
func gradSubjectStepShard(subject string) (step uint64, shard int, ok bool) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return 0, 0, false
	}
	j := strings.LastIndexByte(subject[:i], '.')
	if j < 0 {
		return 0, 0, false
	}
	step, err1 := strconv.ParseUint(subject[j+1:i], 10, 64)
	sh, err2 := strconv.Atoi(subject[i+1:])
	return step, sh, err1 == nil && err2 == nil && sh >= 0
}

// take returns the gradient of (step, shard) if it has arrived — on its
// own, or in a gradient of shards 0..n-1 with n past shard — and a channel
// closed on the next arrival. The gradient stays the caller's until it calls
// drop or moveTo.
func (b *inbox) take(step uint64, shard int) (*protocol.Grad, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if step == b.base && shard < len(b.slots[0]) {
		b.decodeOffered(step, shard)
		if s := &b.slots[0][shard]; s.have && s.g.Shards() == 1 {
			return &s.g, nil
		}
		b.decodeOffered(step, 0)
		if s := &b.slots[0][0]; s.have && s.g.Shards() > shard {
			return &s.g, nil
		}
	}
	return nil, b.arrived
}

// mark records that the replica has (step, shard) already (it computed
// it), so an echo of it is not decoded.
func (b *inbox) mark(step uint64, shard int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := step - b.base; step >= b.base && i <= 1 && shard < len(b.slots[i]) {
		b.slots[i][shard].have = true
	}
}

// drop frees the slot of (step, shard) for another arrival: the one there
// was computed on other weights.
func (b *inbox) drop(step uint64, shard int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if step == b.base {
		b.slots[0][shard].have = false
	}
}

// moveTo makes step the current step: the gradients of the step after the
// old one are kept when that is the new one, everything else is forgotten.
func (b *inbox) moveTo(step uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if step == b.base+1 {
		b.slots[0], b.slots[1] = b.slots[1], b.slots[0]
		clearSlots(b.slots[1])
	} else if step != b.base {
		clearSlots(b.slots[0])
		clearSlots(b.slots[1])
	}
	b.base = step
	b.parts.DropBefore(b.run, step)
}

func clearSlots(s []gradSlot) {
	for i := range s {
		s[i].have = false
		s[i].let()
	}
}

// waitArrival waits for arrived, d or ctx, whichever comes first, and
// reports whether ctx is still live.
func waitArrival(ctx context.Context, arrived <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-arrived:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}
