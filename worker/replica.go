package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
)

// replica is a worker's own copy of a run's training state: the weights
// version it computes on, the optimizer state that goes with it, and the
// sum of the current step's shard gradients. It steps itself forward with
// the same model.ShardSum code as the coordinator, from the gradients in the
// grads stream (its own, and the ones other workers publish, which arrive
// in its inbox), so each version's weights are the bytes the coordinator
// commits, without the coordinator sending them. A gradient computed on a
// version names its check (model.Check); the coordinator uses it only if
// that matches.
//
// A replica that has no state, or cannot step to the version a task names,
// starts from the run's snapshot in the state object store and replays the
// gradients of the steps after it.
type replica struct {
	run    string
	size   int
	shards int
	count  int // samples per step: the mean's denominator
	opt    model.Optimizer
	sum    *model.ShardSum
	sumBuf []byte      // the gradBuffers buffer sum folds in (nil: its own)
	lent   *sentBuffer // the buffer of a sum lent to its publisher (gradBuffers.lend), held until the step is applied
	inbox  *inbox
	losses *natsconn.Losses // ends its lookups in flight when the connection is lost

	valid   bool
	step    uint64
	own     int           // shards 0..own-1 of the step are in the sum, all computed here
	weights []float32     // the run's network's own buffer (model.Network.Params): gradients are taken on it without a copy
	check   [8]byte       // model.Check of weights
	fetched protocol.Grad // a gradient fetched from the grads stream
	looks   []*streamLook // how far the lookups of the current step have read, by the shard of their subject
}

// streamLook is how far a replica's lookups of one subject in the grads
// stream have read at the current step, and the parts of gradients they
// found, so that the next poll reads on from there: what it read stays
// what it was (a stored message never changes). Within a step, a later
// lookup of a subject accepts no more than an earlier one did (shard 0's
// subject is searched first for any gradient of shard 0, then for sums
// reaching past each later shard), so none needs a message an earlier
// one passed over.
type streamLook struct {
	next  uint64 // the sequence to look from
	parts *protocol.Assembler
}

// streams are where a replica finds what its inbox does not have.
type streams struct {
	grads  jetstream.Stream
	state  jetstream.ObjectStore
	params jetstream.Stream
}

// snapshotWait bounds reading a snapshot, in place of the JetStream
// client's 5 s default: a large snapshot on a busy server needs longer than
// 5 s. (One the coordinator replaces while it is read loses its chunks;
// protocol.ReadSnapshot sees that and reads the new one.)
const snapshotWait = 30 * time.Second

// lookupWait bounds a lookup of one message, in place of the JetStream
// client's 5 s default; a lookup out when the connection is lost ends then
// (natsconn.Losses). A lookup is a round trip to the broker; one asked
// as the broker went down is never answered, and with the default a
// replica waited out the 5 s after every broker restart before asking
// again (the run stalled that long under the chaos harness).
const lookupWait = time.Second

// gatherWait bounds the wait for the gradients of a step: past it the task
// goes back to the consumer, so a worker never sits on a task while the
// shard it waits for is redelivered to itself.
const gatherWait = 2 * time.Second

// errNotYet means the gradients the replica needs are not all in the grads
// stream yet; the task is handed back for later.
var errNotYet = errors.New("worker: the gradients of an earlier step are not all published yet")

// reach steps the replica to version step, starting from the run's snapshot
// when it cannot get there from where it is, or when the snapshot is newer
// and the gradients it would replay may be trimmed from the stream already:
// it is more than a step behind, or one step behind with gradients of its
// step missing that its inbox does not expect (a checkpoint at step trims
// those of the step before; without the snapshot the replica would wait
// for them, then compute them itself).
func (rp *replica) reach(ctx context.Context, s streams, step uint64, idle idleFunc) error {
	oneBehindUnheard := rp.valid && step == rp.step+1 && !rp.sum.Complete() && !rp.inbox.covers(rp.step)
	if !rp.valid || rp.step > step || step-rp.step > 1 || oneBehindUnheard {
		// A replica that can step forward to step goes on when the
		// snapshot is unusable, unless it shows that step is committed.
		canStep := rp.valid && rp.step <= step
		if err := rp.start(ctx, s.state, step, canStep); err != nil && (!canStep || errors.Is(err, errStale)) {
			return err
		}
	}
	for rp.step < step {
		if err := rp.advance(ctx, s.grads, idle); err != nil {
			return err
		}
	}
	return nil
}

// start loads the run's snapshot, for a task at step. With keep (the
// replica can step forward to step) it is kept unless the snapshot is newer.
func (rp *replica) start(ctx context.Context, state jetstream.ObjectStore, step uint64, keep bool) error {
	ictx, cancel := rp.losses.Bound(ctx, lookupWait)
	info, err := state.GetInfo(ictx, protocol.StateObject(rp.run))
	cancel()
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: no snapshot of run %s yet", errNotYet, rp.run)
	}
	if err != nil {
		return fmt.Errorf("worker: snapshot of run %s: %w", rp.run, err)
	}
	if at, ok := protocol.SnapshotStep(info); ok {
		if keep && at <= rp.step {
			return nil // not newer than the replica: not worth reading
		}
		if at > step {
			// A task behind the snapshot is stale, whatever the snapshot
			// holds: no need to read it. (A task left over from long ago,
			// its commit record trimmed, came here, and its worker read a
			// snapshot through a broker restart for 30 s while it held
			// the tasks the run waited for.)
			return fmt.Errorf("%w: run %s step %d is behind its snapshot at step %d", errStale, rp.run, step, at)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, snapshotWait)
	defer cancel()
	raw, err := protocol.ReadSnapshot(rctx, state, rp.run)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: no snapshot of run %s yet", errNotYet, rp.run)
	}
	if err != nil {
		return fmt.Errorf("worker: snapshot of run %s: %w", rp.run, err)
	}
	var p protocol.Params
	if err := p.UnmarshalBinary(raw); err != nil {
		return fmt.Errorf("worker: snapshot of run %s: %w", rp.run, err)
	}
	if keep && p.Step <= rp.step {
		return nil
	}
	switch {
	case p.Run != rp.run || len(p.Weights) != rp.size:
		return fmt.Errorf("worker: snapshot of run %s holds run %s with %d weights, the network has %d", rp.run, p.Run, len(p.Weights), rp.size)
	case p.Step > step:
		return fmt.Errorf("%w: run %s step %d is behind its snapshot at step %d", errStale, rp.run, step, p.Step)
	case model.Check(p.Weights) != p.Check:
		return fmt.Errorf("worker: snapshot of run %s step %d: weights check mismatch", rp.run, p.Step)
	}
	rp.valid = false
	if err := rp.opt.UnmarshalState(p.OptState); err != nil {
		return fmt.Errorf("worker: snapshot of run %s step %d: optimizer state: %w", rp.run, p.Step, err)
	}
	copy(rp.weights, p.Weights)
	rp.step, rp.valid, rp.own = p.Step, true, 0
	rp.forgetLooks()
	rp.check = p.Check
	rp.sum.Reset()
	rp.letLent()
	rp.inbox.moveTo(rp.step)
	return nil
}

// add takes the replica's own gradient of shard at the current version,
// and reports whether the sum now holds exactly shards 0..shard, all of
// them its own.
func (rp *replica) add(shard int, grad model.Parts) (ownPrefix bool) {
	if rp.sum.Has(shard) {
		return false
	}
	rp.sum.AddParts(shard, grad)
	rp.inbox.mark(rp.step, shard)
	if rp.own == shard && rp.sum.Folded() == shard+1 {
		rp.own++
		return true
	}
	return false
}

// letLent lets go of the buffer of a sum lent to its publisher, once the
// sum is applied or dropped.
func (rp *replica) letLent() {
	if rp.lent != nil {
		rp.lent.release()
		rp.lent = nil
	}
}

// idleFunc is called by a replica waiting for the gradients of step, with
// how long it has waited for them.
type idleFunc func(step uint64, waited time.Duration)

// advance gathers every shard gradient of the current step — its own, from
// the inbox, or from the grads stream — and applies their mean. While it
// waits it calls idle, which may compute some of them (through add).
func (rp *replica) advance(ctx context.Context, grads jetstream.Stream, idle idleFunc) error {
	want := rp.check
	start := time.Now()
	for shard := 0; shard < rp.shards; shard++ {
		if rp.sum.Has(shard) {
			continue
		}
		if err := rp.gather(ctx, grads, shard, want, start, idle); err != nil {
			return err
		}
	}
	rp.sum.Apply(rp.opt, rp.weights, rp.count, rp.step)
	rp.letLent()
	rp.step++
	rp.own = 0
	rp.forgetLooks()
	rp.inbox.moveTo(rp.step)
	rp.check = model.Check(rp.weights)
	return nil
}

// gather adds the gradient of shard at the current step on the weights
// whose check is want — or a gradient of shards 0..n-1 past it —
// unless idle added it meanwhile.
// start is when the wait for the step began; it ends gatherWait after.
func (rp *replica) gather(ctx context.Context, grads jetstream.Stream, shard int, want [8]byte, start time.Time, idle idleFunc) error {
	deadline := start.Add(gatherWait)
	poll := 50 * time.Millisecond
	next := time.Now()
	if rp.inbox.covers(rp.step) {
		// It will arrive by subscription: look in the stream only if
		// it has not after a poll's wait.
		next = start.Add(poll)
	}
	for {
		if rp.sum.Has(shard) {
			if shard > 0 && shard < len(rp.looks) {
				rp.looks[shard] = nil // only gather(shard) reads its subject
			}
			return nil
		}
		g, arrived := rp.inbox.take(rp.step, shard)
		if g != nil {
			if g.Weights == want {
				rp.take(g)
				continue
			}
			rp.inbox.drop(rp.step, int(g.Shard))
			continue
		}
		now := time.Now()
		if !now.Before(next) {
			// It may have been published before the inbox looked for it.
			ok, err := rp.fetch(ctx, grads, shard, want)
			if err != nil {
				return err
			}
			if ok {
				rp.take(&rp.fetched)
				continue
			}
			next, poll = now.Add(poll), min(2*poll, 500*time.Millisecond)
		}
		if now.After(deadline) {
			// The next try reads the stream from its start: one that was
			// recreated, or restored, numbers its messages anew.
			rp.forgetLooks()
			return fmt.Errorf("%w (run %s step %d shard %d)", errNotYet, rp.run, rp.step, shard)
		}
		if idle != nil {
			idle(rp.step, time.Since(start))
			if rp.sum.Has(shard) {
				continue
			}
		}
		if !waitArrival(ctx, arrived, min(next.Sub(now), deadline.Sub(now))+time.Millisecond) {
			return ctx.Err()
		}
	}
}

// take adds a gradient of the current step on the current weights, and
// tells the inbox it need not decode a copy arriving by subscription.
func (rp *replica) take(g *protocol.Grad) {
	first, n := int(g.Shard), g.Shards()
	rp.sum.AddShards(first, n, model.Parts{g.Grad})
	for s := first; s < first+n; s++ {
		rp.inbox.mark(rp.step, s)
	}
}

// fetch looks in the grads stream for the first gradient of shard at the
// current step on the weights whose check is want: one of shard
// alone, or else one of shards 0..n-1 with n past shard.
func (rp *replica) fetch(ctx context.Context, grads jetstream.Stream, shard int, want [8]byte) (bool, error) {
	ok, err := rp.fetchFrom(ctx, grads, shard, want, func(g *protocol.Grad) bool { return g.Shards() == 1 || shard == 0 })
	if ok || err != nil || shard == 0 {
		return ok, err
	}
	return rp.fetchFrom(ctx, grads, 0, want, func(g *protocol.Grad) bool { return g.Shards() > shard })
}

func (rp *replica) fetchFrom(ctx context.Context, grads jetstream.Stream, shard int, want [8]byte, covers func(*protocol.Grad) bool) (bool, error) {
	l := rp.look(shard)
	subject := protocol.GradSubject(rp.run, rp.step, shard)
	for {
		lctx, cancel := rp.losses.Bound(ctx, lookupWait)
		raw, err := grads.GetMsg(lctx, l.next, jetstream.WithGetMsgSubject(subject))
		lost := natsconn.Lost(lctx)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, nil
		}
		if err != nil && ctx.Err() == nil && (lost || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
			return false, nil // asked again at the next poll
		}
		if err != nil {
			return false, fmt.Errorf("worker: fetching %s: %w", subject, err)
		}
		l.next = raw.Sequence + 1
		g := &rp.fetched
		if _, ok, err := l.parts.Decode(raw.Data, raw.Sequence, g); err == nil && ok && fits(g, rp.run, rp.step, shard, rp.shards, rp.size) && g.Weights == want && covers(g) {
			return true, nil
		}
	}
}

// look is where the lookups of shard's subject at the current step stand.
func (rp *replica) look(shard int) *streamLook {
	if len(rp.looks) != rp.shards {
		rp.looks = make([]*streamLook, rp.shards)
	}
	if rp.looks[shard] == nil {
		rp.looks[shard] = &streamLook{next: 1, parts: protocol.NewAssembler(4, rp.size)}
	}
	return rp.looks[shard]
}

// forgetLooks drops the lookups' state and the parts they hold.
func (rp *replica) forgetLooks() { clear(rp.looks) }
