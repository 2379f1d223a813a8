package coordinator

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// trimmer purges a run's gradients from the grads stream below what its
// newest checkpoint covers, once the snapshot workers start from is stored
// for that step (or a later one) too: a restart resumes from that
// checkpoint and replays what is left, a worker starts from that snapshot
// and replays the same. So the broker holds the gradients of one
// checkpoint interval (and, at an epoch's end, of the steps committed while
// the epoch's evaluation runs, as its checkpoint waits for it), whatever
// keep says (it held those since the oldest
// kept checkpoint: three intervals by default, and with a sparse
// checkpoint_every the Go heap of an embedded broker grew into fresh pages
// at every step). A finished run, whose final checkpoint and snapshot
// cover all its steps, leaves none (node.finish waits for that snapshot),
// bar a gradient a late worker sends afterwards. A restart that must fall
// back to an older checkpoint
// recomputes the steps up to the newest one in the coordinator
// (node.recompute): their gradients are gone, and sent again under the
// same message ids they would be dropped as duplicates.
//
// A coordinator purges only while the broker says it holds the run's
// lease: one paused past its lease (a stopped process, a frozen machine)
// may commit a checkpoint when it wakes, before it notices the loss, while
// the standby that took over still replays gradients below it. The check
// narrows that window to the moment between it and the purge; it does not
// close it.
//
// The saver and the snapshot writer call it from their own goroutines.
type trimmer struct {
	grads jetstream.Stream // nil: nothing is purged
	run   string
	log   *slog.Logger
	leads func(context.Context) bool // asked before each purge; nil: always

	mu        sync.Mutex
	committed []stepSeq // checkpoints committed and not yet trimmed to, oldest first
	snapped   uint64    // newest step whose snapshot is stored, plus one (0: none yet)
	trimmed   uint64    // the stream is purged below this sequence
}

// stepSeq is a committed checkpoint: its step and the last grads-stream
// sequence it covers (objstore.Checkpoint.GradsSeq).
type stepSeq struct{ step, seq uint64 }

func newTrimmer(grads jetstream.Stream, run string, log *slog.Logger) *trimmer {
	return &trimmer{grads: grads, run: run, log: log}
}

// checkpointed records that the checkpoint of step, covering the stream up
// to seq, is committed.
func (t *trimmer) checkpointed(ctx context.Context, step, seq uint64) {
	t.mu.Lock()
	t.committed = append(t.committed, stepSeq{step, seq})
	below := t.advance()
	t.mu.Unlock()
	t.purge(ctx, below)
}

// snapshotWritten records how the write of the snapshot of step ended:
// stored (err nil), or refused for want of room, which counts as stored
// here since the room a purge frees is what the run needs to go on at all
// (a worker that must start from a snapshot meanwhile may have to wait for
// the next one). Any other failure holds trimming back.
func (t *trimmer) snapshotWritten(ctx context.Context, step uint64, err error) {
	if err != nil && !protocol.NoRoom(err) {
		return
	}
	t.mu.Lock()
	t.snapped = max(t.snapped, step+1)
	below := t.advance()
	t.mu.Unlock()
	t.purge(ctx, below)
}

// advance returns the sequence to purge below, if it moved: just past the
// newest committed checkpoint no newer than the newest stored snapshot.
// Checkpoints older than that one are forgotten.
func (t *trimmer) advance() uint64 {
	newest := -1
	for i, c := range t.committed {
		if c.step < t.snapped {
			newest = i
		}
	}
	if newest < 0 {
		return 0
	}
	below := t.committed[newest].seq + 1
	t.committed = t.committed[newest+1:]
	if below <= t.trimmed {
		return 0
	}
	t.trimmed = below
	return below
}

// purge removes the run's gradients below seq (nothing for 0). A failed
// purge is logged; the next one covers what it left.
func (t *trimmer) purge(ctx context.Context, below uint64) {
	if below <= 1 || t.grads == nil {
		return
	}
	if t.leads != nil && !t.leads(ctx) {
		t.log.Warn("coordinator: not trimming the grads stream: this coordinator may no longer lead the run", "run", t.run, "below_seq", below)
		t.retry(below)
		return
	}
	err := t.grads.Purge(ctx, jetstream.WithPurgeSubject(protocol.GradsFilter(t.run)), jetstream.WithPurgeSequence(below))
	if err != nil && ctx.Err() == nil {
		t.log.Warn("coordinator: trimming the grads stream failed; it will be retried after the next checkpoint", "run", t.run, "below_seq", below, "err", err)
		t.retry(below)
	}
}

// retry has the next checkpoint purge below what the purge below below
// did not.
func (t *trimmer) retry(below uint64) {
	t.mu.Lock()
	if t.trimmed == below {
		t.trimmed = 0
	}
	t.mu.Unlock()
}
