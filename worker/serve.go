package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// serve handles one task message from start to acknowledgment.
func (w *Worker) serve(ctx context.Context, msg jetstream.Msg) {
	start := time.Now()
	var t protocol.Task
	if err := t.UnmarshalBinary(msg.Data()); err != nil {
		w.reject(msg, "malformed task", err)
		return
	}
	if len(w.pending) > 0 && !w.extendsPending(&t) {
		w.flush()
	}
	var redelivered int64
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		redelivered = int64(md.NumDelivered - 1)
		w.again.Add(1)
		w.metrics.TasksRedelivered.Add(ctx, 1, w.idAttr)
	}
	ctx, span := w.tr.Start(telemetry.Extract(ctx, msg.Headers()), telemetry.SpanTask, trace.WithAttributes(
		attribute.String(telemetry.AttrRun, t.Run), attribute.Int64(telemetry.AttrStep, int64(t.Step)),
		attribute.Int(telemetry.AttrEpoch, int(t.Epoch)), attribute.Int(telemetry.AttrShard, int(t.Shard)),
		attribute.String(telemetry.AttrWorker, w.opts.ID), attribute.Int64(telemetry.AttrRedelivery, redelivered)))
	defer span.End()
	loaded := w.runs.loaded.Load()
	run, err := w.runs.get(ctx, w.kv, t.Run)
	if w.runs.loaded.Load() != loaded && w.feed != nil {
		// Setting a run up is no measure of how long its tasks take.
		w.feed.restartClock()
	}
	if delay, ok := handBackDelay(err, redelivered); ok {
		// Every task in hand meets it while the broker is away, or while
		// this worker has no dataset for the run: warned of once a minute,
		// noted at debug level otherwise.
		log := w.opts.Log.Debug
		if pace.Due(&w.outOfReach, time.Now(), time.Minute) {
			log = w.opts.Log.Warn
		}
		log("worker: reading the task's run failed; task will be redelivered", "task", t.String(), "err", err)
		w.uncounted()
		w.held.nak(msg, delay)
		return
	}
	if err != nil {
		w.reject(msg, "task for an unusable run", err)
		return
	}
	if err := run.checkTask(&t); err != nil {
		w.reject(msg, "task does not fit its run", err)
		return
	}
	run.note(&t)
	_, fetch := w.tr.Start(ctx, telemetry.SpanTaskFetch)
	err = run.prepare(ctx, w.streams, w.versions, t.Step, func(step uint64, waited time.Duration) {
		w.idle(ctx, run, step, waited)
	})
	fetch.End()
	if errors.Is(err, errStale) {
		w.opts.Log.Debug("worker: dropping a stale task", "task", t.String(), "err", err)
		w.uncounted()
		w.held.term(msg)
		return
	}
	if err != nil {
		if errors.Is(err, errNotYet) {
			w.opts.Log.Debug("worker: handing a task back", "task", t.String(), "err", err)
		} else {
			w.opts.Log.Warn("worker: preparing the weights failed; task will be redelivered", "task", t.String(), "err", err)
		}
		w.uncounted()
		w.held.nak(msg, notYetDelay)
		return
	}

	_, compute := w.tr.Start(ctx, telemetry.SpanTaskCompute)
	g, prefix, err := run.gradient(&t)
	compute.End()
	if err != nil {
		w.reject(msg, "gradient failed", err)
		return
	}
	held := heldTask{ctx: ctx, msg: msg, task: t, start: start}
	if prefix && (t.Shard == 0 || len(w.pending) > 0) {
		// This worker computed every shard of the step so far, none sent
		// yet: they go out as one gradient, once the run of them ends.
		w.pending = append(w.pending, pendingShard{held: held, stats: g.Stats[0]})
		w.pendingRun = run
		// The step's last shard ends the run at once; otherwise the next
		// task in hand decides (a wait of up to a millisecond for one, or
		// longer while no other worker is heard: see nextTask).
		if int(t.Shard)+1 == int(t.Shards) || !w.nextIs(run, t.Step, int(t.Shard)+1) {
			w.flush()
		}
		return
	}
	g.Worker = w.opts.ID
	g.Weights = run.rep.check
	w.sendShard([]heldTask{held}, g, run)
}

// sendShard sends g, a shard's gradient whose values are r's last one's,
// still in the network's buffers: copied once, straight into its message,
// unless it goes out in parts.
func (w *Worker) sendShard(tasks []heldTask, g *protocol.Grad, r *run) {
	if buf, msgs, ok := w.bufs.encodeParts(g, r.parts, r.size, w.maxGradPayload()); ok {
		w.handOut(tasks, g, buf, msgs)
		return
	}
	w.send(tasks, g)
}

// pendingShard is a computed shard whose gradient is in the replica's sum,
// waiting to go out with the shards after it.
type pendingShard struct {
	held  heldTask
	stats protocol.ShardStats
}

// extendsPending reports whether t is the next shard of the pending run.
func (w *Worker) extendsPending(t *protocol.Task) bool {
	last := &w.pending[len(w.pending)-1].held.task
	return t.Run == last.Run && t.Step == last.Step && t.Shard == last.Shard+1
}

// nextIs reports whether the next task in hand is (r's run, step, shard).
// It looks at the task the consumer has prefetched, keeping it for the
// loop, or waits for one (see nextTask).
func (w *Worker) nextIs(r *run, step uint64, shard int) bool {
	if len(w.stash) == 0 {
		msg, ok := w.nextTask(r, step)
		if !ok {
			return false
		}
		w.stash = append(w.stash, msg)
	}
	var t protocol.Task
	return t.UnmarshalBinary(w.stash[0].Data()) == nil && t.Run == r.sig && t.Step == step && int(t.Shard) == shard
}

// nextTask waits for the next task while a worker holds the first shards
// of step. The next task is almost always in hand already; but on a
// machine whose cores are busy it can take the client a few milliseconds
// to hand over a task the broker sent long before, and a gradient sent
// early means the rest of the step goes as more gradients, each as large
// as the network. So it waits a millisecond, and then on, a millisecond at
// a time up to aloneWait, while r's inbox hears no other worker: the next
// shard can then only be this worker's. Another worker may hold it
// otherwise, and waiting longer than a moment would hold that worker up
// as well.
//
// A feed that keeps no hand (its tasks are slow) has no next task in hand:
// the shards held go at once.
func (w *Worker) nextTask(r *run, step uint64) (jetstream.Msg, bool) {
	deadline := time.Now().Add(aloneWait)
	for {
		if w.feed.pace.single && len(w.feed.queue) == 0 {
			return nil, false
		}
		msg, err := w.next(time.Millisecond)
		if err == nil {
			return msg, true
		}
		if errors.Is(err, errFeedClosed) || !r.rep.inbox.alone(step) || !time.Now().Before(deadline) {
			return nil, false
		}
	}
}

// aloneWait is nextTask's bound for a worker that hears no other: a few
// shards' time on the default MLP, far past the hand-over delays measured
// on two busy cores (up to 8 ms). Tests lengthen it.
var aloneWait = 20 * time.Millisecond

// notYetDelay is how long a task handed back because the weights it needs
// are not there yet waits before it is delivered again.
const notYetDelay = 100 * time.Millisecond

// handBackDelay says whether a task whose run could not be had (err from
// the run cache) goes back to the work queue, and after how long, rather
// than being dropped as a task of an unknown or broken run. A run out of
// reach goes back at once; so does a run whose config is not found on the
// task's first deliveries, since on a replicated bucket a follower that
// has not stored a config just written can answer for it. A run whose
// dataset this worker cannot load goes back after datasetRetry: another
// worker may have it.
func handBackDelay(err error, redelivered int64) (time.Duration, bool) {
	switch {
	case err == nil:
		return 0, false
	case errors.Is(err, errRunOutOfReach):
		return notYetDelay, true
	case errors.Is(err, errNoDataset):
		return datasetRetry, true
	case errors.Is(err, jetstream.ErrKeyNotFound) && redelivered < unknownRunDeliveries-1:
		return notYetDelay, true
	}
	return 0, false
}

// unknownRunDeliveries is how many times a task whose run's config is not
// found is delivered before it is dropped.
const unknownRunDeliveries = 3

// inHand returns the next task the consumer has prefetched, if it has one
// (or gets one within a millisecond).
func (w *Worker) inHand() (jetstream.Msg, bool) {
	msg, err := w.next(time.Millisecond)
	return msg, err == nil
}

// next takes the next task from the consumer, counting the time it waits
// as idle (Idle and the WorkerIdle metric).
func (w *Worker) next(maxWait time.Duration) (jetstream.Msg, error) {
	start := time.Now()
	single := w.feed.pace.single
	msg, err := w.feed.next(maxWait)
	if !errors.Is(err, errFeedClosed) {
		waited := time.Since(start)
		w.waited.Add(int64(waited))
		w.metrics.WorkerIdle.Add(context.Background(), waited.Seconds(), w.idAttr)
	}
	watched := w.feed.watched
	w.feed.watched = false
	if p := &w.feed.pace; p.single != single {
		log := w.opts.Log.Debug
		if pace.Due(&w.handLogged, time.Now(), time.Minute) {
			log = w.opts.Log.Info
		}
		switch {
		case p.single && watched:
			log("worker: took no task for a third of the ack wait; the tasks in hand are kept alive, and tasks taken one at a time",
				"worker", w.opts.ID, "last_task", p.last, "limit", p.limit)
		case p.single:
			log("worker: the last tasks took longer than a hand of them may wait under the ack wait; taking tasks one at a time",
				"worker", w.opts.ID, "last_task", p.last, "hand_took", p.sum, "limit", p.limit)
		default:
			log("worker: tasks are quick again; keeping a hand of them", "worker", w.opts.ID, "hand", prefetch)
		}
	}
	return msg, err
}

// uncounted leaves the task being served out of the feed's pace: it is
// handed back or dropped without being computed.
func (w *Worker) uncounted() {
	if w.feed != nil {
		w.feed.discount()
	}
}

// flush sends the pending shards as one gradient: the replica's sum of
// them. If the replica moved on meanwhile (it does not between shards of
// one step, unless tasks come back from failed publishes), they go back
// for redelivery instead.
func (w *Worker) flush() {
	pending, run := w.pending, w.pendingRun
	w.pending, w.pendingRun = nil, nil
	tasks := make([]heldTask, len(pending))
	stats := make([]protocol.ShardStats, len(pending))
	for i, p := range pending {
		tasks[i], stats[i] = p.held, p.stats
	}
	rp := run.rep
	first := &tasks[0].task
	if !rp.valid || rp.step != first.Step || rp.sum.Folded() != len(pending) {
		// While the broker stores nothing, redelivered tasks come back in
		// any order and this is routine: not worth a warning each time.
		log := w.opts.Log.Warn
		if w.pubFails.failing() {
			log = w.opts.Log.Debug
		}
		log("worker: the replica moved on before its shards were sent; their tasks will be redelivered", "task", first.String(), "tasks", len(tasks))
		w.handBack(tasks, 0)
		return
	}
	g := &protocol.Grad{Run: first.Run, Step: first.Step, Shard: 0, Worker: w.opts.ID, Weights: rp.check,
		Stats: stats, Grad: rp.sum.Sum()}
	if buf, msgs, ok := w.bufs.lend(rp, g, w.maxGradPayload()); ok {
		w.handOut(tasks, g, buf, msgs)
		return
	}
	w.send(tasks, g)
}

// maxGradPayload is how large a gradient's message may be.
func (w *Worker) maxGradPayload() int { return int(w.nc.MaxPayload()) - protocol.HeaderRoom }

// send encodes g — in parts if it does not fit the server's max payload —
// and hands it to the publisher with the tasks it answers.
func (w *Worker) send(tasks []heldTask, g *protocol.Grad) {
	b, msgs, err := g.AppendParts(w.bufs.get(len(g.Grad)), w.maxGradPayload())
	if err != nil {
		w.publishFailed(tasks, err)
		return
	}
	// The buffer carries the next gradient once the broker has stored
	// this one and whoever else was handed it is done with it.
	buf := &sentBuffer{data: b, whole: b, spare: w.bufs.spare}
	buf.holds.Store(1)
	w.handOut(tasks, g, buf, msgs)
}

// handOut offers g, encoded in buf as msgs, to the worker's peers, and
// hands it to the publisher with the tasks it answers.
func (w *Worker) handOut(tasks []heldTask, g *protocol.Grad, buf *sentBuffer, msgs []protocol.Encoded) {
	if w.opts.Peers != nil {
		w.opts.Peers.offer(g.Run, w.opts.ID, g.Step, int(g.Shard), buf, msgs)
	}
	w.inflight.Add(1)
	w.out <- outgoing{tasks: tasks, buf: buf, msgs: msgs, shard: int(g.Shard), weights: g.Weights}
}

// reject logs a task that can never succeed once, with where it came from,
// and terminates it so it is not redelivered.
func (w *Worker) reject(msg jetstream.Msg, what string, err error) {
	var where string
	if md, mErr := msg.Metadata(); mErr == nil {
		where = fmt.Sprintf(" (stream %s seq %d)", md.Stream, md.Sequence.Stream)
	}
	w.opts.Log.Warn("worker: dropping "+what+" on "+msg.Subject()+where, "err", err)
	w.uncounted()
	w.held.term(msg)
}
