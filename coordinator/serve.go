package coordinator

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// delivery is one grads-stream message handed from the reader to the loop;
// grad is nil for a malformed message (already logged) and for a part that
// completed no gradient.
type delivery struct {
	grad    *protocol.Grad
	seq     uint64 // of its first part, for a gradient sent in parts
	pending uint64 // messages after this one at delivery: 0 = caught up
	floor   uint64 // the earliest part of a gradient the reader is still putting together (0: none)
}

// serve replays the grads stream from the checkpoint, then drives the run
// live until it is done.
//
// The lease's loss ends its context, with ErrLeaseLost as the cause: the
// recompute, the loop and the finish stop at once, whatever they wait for,
// and serve returns that error (another coordinator may have the run).
func (n *node) serve(ctx context.Context) (res *Result, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer func() {
		if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrLeaseLost) {
			res, err = nil, cause
		}
	}()
	saverDone := make(chan struct{})
	go func() { n.saver.loop(ctx); close(saverDone) }()
	snapsDone := make(chan struct{})
	go func() { n.snaps.loop(ctx); close(snapsDone) }()
	evalsDone := make(chan struct{})
	go func() { n.evals.loop(ctx); close(evalsDone) }()
	keepDone := make(chan struct{})
	go func() { n.lease.cancelOnLoss(ctx, cancel); close(keepDone) }()
	// Every goroutine serve starts ends before it returns. The lease's own
	// refreshing goes on until close releases it, at the revision the last
	// refresh left.
	defer func() { cancel(nil); <-saverDone; <-snapsDone; <-evalsDone; <-keepDone }()

	if n.catchUp > n.m.Step() {
		if err := n.recompute(ctx); err != nil {
			return nil, err
		}
	}
	if n.m.Done() {
		return n.finish(ctx)
	}
	if x := n.opts.Handoff; x != nil {
		// The in-process workers hand this run's gradients over while the
		// node reads (the reader has ended when this runs).
		detach := x.Attach(n.run)
		defer detach()
	}
	from := n.m.LastSeq() + 1
	cons, err := n.gradsConsumer(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("coordinator: reading the grads stream: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("coordinator: reading the grads stream: %w", err)
	}
	replaying := info.NumPending > 0
	var replaySpan trace.Span
	if replaying {
		n.opts.Log.Info("replaying the grads stream", "run", n.run, "from_seq", from, "messages", info.NumPending)
		_, replaySpan = n.trace.tr.Start(ctx, telemetry.SpanRecoveryReplay, trace.WithAttributes(n.trace.runAttr,
			attribute.Int64(telemetry.AttrStep, int64(n.m.Step())), attribute.Int64("jettrain.replay.messages", int64(info.NumPending))))
		// A replay cut short (the lease lost, the broker gone, the run
		// finished by the replay) still ends its span, saying how far it got.
		defer func() {
			if replaying {
				replaySpan.SetAttributes(attribute.Int("jettrain.replay.reused", n.replayed), attribute.Int64("jettrain.replay.step", int64(n.m.Step())))
				if err != nil {
					why := err
					if c := context.Cause(ctx); errors.Is(err, context.Canceled) && c != nil {
						why = c // the lease lost, say
					}
					replaySpan.SetStatus(codes.Error, why.Error())
				}
				replaySpan.End()
			}
		}()
	} else if err := n.resume(ctx); err != nil {
		return nil, err
	}
	defer n.trace.end()
	// Heartbeats count the workers alive; workers' gradients refused for
	// want of room count as refusals of the coordinator's own (an account's
	// quota may pass its small messages). Core subscriptions, which the
	// connection renews after a reconnect: one refused now is an error.
	beats := make(chan *nats.Msg, 64)
	sub, err := n.js.Conn().ChanSubscribe(protocol.HeartbeatSubject, beats)
	if err != nil {
		return nil, fmt.Errorf("coordinator: subscribing to heartbeats: %w", err)
	}
	defer sub.Unsubscribe()
	refusals := make(chan *nats.Msg, 64)
	rsub, err := n.js.Conn().ChanSubscribe(protocol.RefusalSubject, refusals)
	if err != nil {
		return nil, fmt.Errorf("coordinator: subscribing to refusals: %w", err)
	}
	defer rsub.Unsubscribe()

	in := make(chan delivery, 64)
	readDone := make(chan struct{})
	go func() { n.read(ctx, cons, from, in); close(readDone) }()
	defer func() { cancel(nil); <-readDone }()
	fctx, stopFollowing := context.WithCancel(ctx)
	follow := protocol.FollowAckWait(fctx, n.js, n.ackWait)
	defer func() {
		stopFollowing()
		for range follow { // until it has stopped
		}
	}()
	// The follow stops, closing its channel, when ctx ends (a lease lost)
	// while the loop may still be picking among what is ready: a closed
	// channel is no new ack wait.
	ackWaits := follow
	tick := time.NewTicker(n.ackWait)
	defer tick.Stop()
	report := time.NewTicker(n.opts.StatusEvery)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case msg := <-beats:
			var hb protocol.Heartbeat
			if hb.UnmarshalBinary(msg.Data) == nil {
				n.alive[hb.Worker] = time.Now()
			}
		case msg := <-refusals:
			var f protocol.Refusal
			if f.UnmarshalBinary(msg.Data) == nil && f.Run == n.run {
				n.room.refused(f.Err(), n.opts.Now())
			}
		case <-n.strag.timer.C:
			if err := n.redispatch(ctx); err != nil {
				return nil, err
			}
		case <-report.C:
			n.reportStatus(ctx, replaying, false)
			if err := n.room.expired(n.opts.Now(), n.strag.deadline()); err != nil {
				return nil, err
			}
		case d, ok := <-ackWaits:
			if !ok {
				ackWaits = nil
				break
			}
			n.ackWait = d // a coordinator set another
			tick.Reset(d)
		case <-tick.C:
			if !replaying {
				if err := n.checkStalled(ctx); err != nil {
					return nil, err
				}
			}
		case res := <-n.evals.results:
			if err := n.evaluated(ctx, res, replaying); err != nil {
				return nil, err
			}
		case d := <-in:
			done, err := n.take(ctx, d, replaying)
			if err != nil {
				return nil, err
			}
			if done {
				return n.finish(ctx)
			}
			if replaying && d.pending == 0 {
				replaying = false
				replaySpan.SetAttributes(attribute.Int("jettrain.replay.reused", n.replayed), attribute.Int64("jettrain.replay.step", int64(n.m.Step())))
				replaySpan.End()
				n.trace.m.ReplayedMessages.Add(ctx, int64(n.replayed), n.trace.runSet)
				n.opts.Log.Info("replay finished", "run", n.run, "step", n.m.Step(), "reused_gradients", n.replayed)
				if err := n.resume(ctx); err != nil {
					return nil, err
				}
			}
		}
	}
}

// read decodes grads-stream messages in order and hands them to the loop.
// A malformed message is logged once with its subject and sequence and
// skipped.
func (n *node) read(ctx context.Context, cons jetstream.Consumer, next uint64, out chan<- delivery) {
	for {
		last := n.readFrom(ctx, cons, out)
		if ctx.Err() != nil {
			return
		}
		if last > 0 {
			next = last + 1
		}
		// The iterator ended under us (the broker restarted or the consumer
		// was lost): read on from the next sequence with a new consumer.
		n.opts.Log.Warn("coordinator: reopening the grads stream", "run", n.run, "from_seq", next)
		for {
			if !pace.Wait(ctx, time.Second) {
				return
			}
			var err error
			cons, err = n.gradsConsumer(ctx, next)
			if err == nil {
				break
			}
			n.opts.Log.Warn("coordinator: reopening the grads stream failed; retrying", "run", n.run, "from_seq", next, "err", err)
		}
	}
}

// gradsConsumer reads the run's gradients in the grads stream from
// sequence from on: their headers only when in-process workers hand their
// bytes over (Options.Handoff).
func (n *node) gradsConsumer(ctx context.Context, from uint64) (jetstream.Consumer, error) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{protocol.GradsFilter(n.run)}, HeadersOnly: n.opts.Handoff != nil}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	return n.js.OrderedConsumer(ctx, protocol.GradsStream, cfg)
}

// readFrom delivers messages from cons until its iterator ends, and returns
// the last stream sequence delivered (0 if none).
func (n *node) readFrom(ctx context.Context, cons jetstream.Consumer, out chan<- delivery) (last uint64) {
	it, err := cons.Messages(jetstream.PullMaxBytes(16<<20), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return 0
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return last
			}
			n.opts.Log.Warn("coordinator: grads stream read failed; retrying", "err", err)
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			n.opts.Log.Warn("coordinator: grads message without metadata", "subject", msg.Subject(), "err", err)
			continue
		}
		var g *protocol.Grad
		select {
		case g = <-n.spare:
		default:
			g = new(protocol.Grad)
		}
		// Parts of committed steps are not put together.
		step := n.step.Load()
		n.parts.DropBefore(n.run, step)
		data, done, err := n.body(ctx, msg, md.Sequence.Stream, step)
		if ctx.Err() != nil {
			if err == nil {
				done()
			}
			n.recycle(g)
			return last
		}
		last = md.Sequence.Stream
		var seq uint64
		var ok bool
		switch {
		case errors.Is(err, errStale):
		case err != nil:
			n.opts.Log.Warn("coordinator: skipping a gradient", "subject", msg.Subject(), "seq", md.Sequence.Stream, "err", err)
		default:
			seq, ok, err = n.parts.Decode(data, md.Sequence.Stream, g)
			done()
			if err != nil {
				n.opts.Log.Warn("coordinator: skipping a malformed gradient", "subject", msg.Subject(), "seq", md.Sequence.Stream, "err", err)
			}
		}
		if !ok {
			// Delivered without a gradient all the same, as a part that
			// completes none: the loop learns the new floor, and a replay
			// ending on parts (of a worker that died midway) ends.
			n.recycle(g)
			g, seq = nil, md.Sequence.Stream
		}
		select {
		case out <- delivery{grad: g, seq: seq, pending: md.NumPending, floor: n.parts.Floor()}:
		case <-ctx.Done():
			return last
		}
	}
}

// body returns the bytes of the grads-stream message msg, stored at seq,
// and what to call once done with them: msg's own, unless the consumer
// delivers headers only (Options.Handoff). Then they are the bytes an
// in-process worker handed over under msg's id and worker; else, for a
// gradient of a step the node has not committed (step is its next), the
// stored message, fetched from the stream until that succeeds or ctx ends.
// A gradient of a committed step, which the machine would drop unread, is
// errStale, and is not fetched.
func (n *node) body(ctx context.Context, msg jetstream.Msg, seq, step uint64) (data []byte, done func(), err error) {
	x := n.opts.Handoff
	if x == nil {
		return msg.Data(), func() {}, nil
	}
	h := msg.Headers()
	k := handoff.Key{MsgID: h.Get(jetstream.MsgIDHeader), Worker: h.Get(protocol.WorkerHeader)}
	if data, done, ok := x.Take(k); ok {
		if strconv.Itoa(len(data)) == h.Get(nats.MsgSize) {
			return data, done, nil
		}
		done()
	}
	if s, ok := protocol.GradSubjectStep(msg.Subject()); ok && s < step {
		return nil, nil, errStale
	}
	raw, err := n.fetch(ctx, seq, msg.Subject())
	if err != nil {
		return nil, nil, err
	}
	// The stored message is the one the header came from, unless the
	// broker lost the stream's tail and stored others under its sequences.
	if raw.Subject != msg.Subject() || raw.Header.Get(jetstream.MsgIDHeader) != k.MsgID {
		return nil, nil, fmt.Errorf("%w: the message at sequence %d is now %s %q", errGone, seq, raw.Subject, raw.Header.Get(jetstream.MsgIDHeader))
	}
	return raw.Data, func() {}, nil
}

var (
	// errStale is a gradient of a step already committed.
	errStale = errors.New("coordinator: a gradient of a committed step")
	// errGone is a gradient no longer in the grads stream.
	errGone = errors.New("coordinator: the gradient is gone from the grads stream")
)

// fetch reads the grads stream's message at seq, on subject, trying until
// it succeeds or ctx ends, warning of failures once a minute. A request
// asked as the broker went down is never answered: a try ends when the
// connection is lost (natsconn.Losses), and otherwise the first try waits
// fetchWait only, and each try that times out waits twice as long as the
// one before, up to fetchWaitMax, so a request lost another way costs a
// second, and a slow answer still comes. On a cluster
// a replica that has not stored the message yet answers that it has none:
// it is gone only when the next message on its subject comes after it (it
// was trimmed), or after fetchGone such answers (it was deleted).
func (n *node) fetch(ctx context.Context, seq uint64, subject string) (*jetstream.RawStreamMsg, error) {
	var warned time.Time
	notFound := 0
	wait := fetchWait
	for {
		gctx, cancel := n.losses.Bound(ctx, wait)
		raw, err := n.grads.GetMsg(gctx, seq)
		if err != nil && natsconn.Lost(gctx) {
			err = natsconn.ErrLost
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			notFound++
			next, nerr := n.grads.GetMsg(gctx, seq, jetstream.WithGetMsgSubject(subject))
			if nerr == nil && next.Sequence > seq || notFound >= fetchGone {
				err = fmt.Errorf("%w: sequence %d", errGone, seq)
			}
		}
		cancel()
		switch {
		case err == nil || errors.Is(err, errGone):
			return raw, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case time.Since(warned) >= time.Minute:
			n.opts.Log.Warn("coordinator: fetching a gradient from the grads stream failed; retrying", "seq", seq, "err", err)
			warned = time.Now()
		}
		if errors.Is(err, context.DeadlineExceeded) {
			wait = min(2*wait, fetchWaitMax)
		}
		if !pace.Wait(ctx, 100*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

const (
	// fetchWait bounds the first try of a fetch of a gradient from the
	// grads stream, in place of the JetStream client's 5 s default: with
	// it, the coordinator waited 5 s after some broker restarts under the
	// chaos harness. fetchWaitMax bounds the later tries.
	fetchWait    = time.Second
	fetchWaitMax = 30 * time.Second
	// fetchGone is how many answers that the stream has no message at a
	// sequence it may still hold make the message count as gone: 5 s of
	// them at least, at a fetch every 100 ms.
	fetchGone = 50
)

// spareGrads is how many decoded gradients the loop hands back to the
// reader: decoding into buffers already in use spares the allocation and
// the page faults of a fresh tensor per message.
const spareGrads = 8

// recycle hands g's buffers back to the reader; the machine never keeps a
// gradient it was given.
func (n *node) recycle(g *protocol.Grad) {
	if g == nil {
		return
	}
	select {
	case n.spare <- g:
	default:
	}
}

// take feeds one gradient to the machine and performs the work it returns;
// when that commits a step, the gradients of the new step that came early
// are fed in after it.
func (n *node) take(ctx context.Context, d delivery, replaying bool) (done bool, err error) {
	if d.grad != nil { // counted once, not again when a held one is handed in
		n.trace.m.GradientBytes.Add(ctx, int64(4*len(d.grad.Grad)), n.trace.runSet)
	}
	n.m.HoldFrom(d.floor)
	queue := []delivery{d}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		committed, held, done, err := n.apply(ctx, d, replaying)
		if !held {
			n.recycle(d.grad)
		}
		if done || err != nil {
			return done, err
		}
		if committed {
			// Only the new step's are fed in; the later ones stay held
			// (handing them all back after every commit was quadratic
			// in the steps held).
			now := n.m.Step()
			kept := n.held[:0]
			for _, h := range n.held {
				if h.grad.Step == now {
					queue = append(queue, h)
				} else {
					kept = append(kept, h)
				}
			}
			clear(n.held[len(kept):])
			n.held = kept
		}
	}
	return false, nil
}

// apply feeds one gradient to the machine and performs the work it returns.
// held reports that the gradient is kept for a later step (its buffers
// must not be reused yet).
func (n *node) apply(ctx context.Context, d delivery, replaying bool) (committed, held, done bool, err error) {
	if d.grad == nil {
		return false, false, false, nil
	}
	applyStart := time.Now()
	r, err := n.m.Grad(d.grad, d.seq, n.opts.Now())
	if errors.Is(err, ErrAhead) {
		// At most as many as there can be steps with tasks out.
		if len(n.held) >= holdAhead*n.cfg.Shards {
			n.m.Forget(d.seq)
			n.opts.Log.Warn("coordinator: too many gradients of later steps; dropping one", "run", n.run, "seq", d.seq)
			return false, false, false, nil
		}
		n.held = append(n.held, d)
		return false, true, false, nil
	}
	if errors.Is(err, ErrStale) {
		n.opts.Log.Debug("coordinator: "+err.Error(), "seq", d.seq)
		return false, false, false, nil
	}
	if errors.Is(err, ErrDropped) {
		n.opts.Log.Warn("coordinator: "+err.Error(), "seq", d.seq)
		return false, false, false, nil
	}
	if err != nil {
		return false, false, false, err
	}
	if replaying {
		n.replayed++
	}
	done, err = n.perform(ctx, r, replaying, applyStart)
	return r.Commit != nil, false, done, err
}

// perform carries out a Ready. While replaying, nothing is published: the
// tasks of replayed steps were done by the workers already.
func (n *node) perform(ctx context.Context, r Ready, replaying bool, applyStart time.Time) (bool, error) {
	if r.Evaluate != nil {
		n.evals.submit(r.Evaluate)
	}
	if r.Commit != nil {
		n.step.Store(n.m.Step())
		if x := n.opts.Handoff; x != nil {
			x.DropBefore(n.run, n.m.Step()) // what in-process workers sent for committed steps is not read
		}
		n.trace.committed(n.m.Step(), n.cfg.BatchSize, applyStart, r.Evaluate != nil || r.Epoch != nil)
		n.lastMove, n.redo = n.opts.Now(), 0
		n.room.committed()
		n.strag.committed(time.Now())
		loss, _ := n.m.EpochSoFar()
		n.prog.step(n.m.Step(), loss)
		if n.opts.Log.Enabled(ctx, slog.LevelDebug) { // the audit line costs formatting: only when asked for
			c := n.m.Check()
			n.opts.Log.Debug("step committed", "run", n.run, "step", n.m.Step(), "check", hex.EncodeToString(c[:]),
				"seqs", fmt.Sprint(n.m.UsedSeqs()), "firsts", fmt.Sprint(n.m.UsedFirsts()), "replay", replaying)
		}
		if h := n.opts.Hooks.Committed; h != nil {
			h(n.m.Step(), n.m.Check())
		}
	}
	if r.Epoch != nil {
		e := r.Epoch
		n.trace.epochDone(e)
		n.prog.epochDone(e)
		n.opts.Log.Info("epoch finished", "run", n.run, "epoch", e.Epoch, "train_loss", e.TrainLoss, "train_acc", e.TrainAcc,
			"valid_loss", e.ValidLoss, "valid_acc", e.ValidAcc, "samples_per_s", int(e.SamplesPerS), "best", e.Best)
		if h := n.opts.Hooks.EpochDone; h != nil {
			h(e.Epoch, e.TrainLoss, e.ValidAcc)
		}
	}
	if r.Checkpoint != nil {
		// Live status first: `coordinator status` then never shows a
		// committed checkpoint ahead of the live step.
		n.reportStatus(ctx, replaying, false)
		n.saver.save(r.Checkpoint, r.Best)
	}
	if replaying || r.Commit == nil {
		return r.Done, nil // a gradient that did not complete its step: nothing to publish
	}
	if r.Done {
		// The last commit record still goes out: it tells workers holding
		// a redelivered task of the last step that it is done. So does the
		// last snapshot (see finish).
		return true, n.publish(ctx, r.Commit, r.State, nil, "")
	}
	return false, n.publishStep(ctx, r)
}

// evaluated hands a finished evaluation to the machine and carries out what
// it releases: the epoch's results, and the checkpoints that waited for
// them.
func (n *node) evaluated(ctx context.Context, res evalResult, replaying bool) error {
	if res.err != nil {
		return fmt.Errorf("coordinator: evaluating epoch %d: %w", res.epoch, res.err)
	}
	rs, err := n.m.Evaluated(res.epoch, res.stats)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if _, err := n.perform(ctx, r, replaying, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// publishStep publishes a step's commit record, snapshot and tasks and
// starts watching it for stragglers.
func (n *node) publishStep(ctx context.Context, r Ready) error {
	if err := n.publish(ctx, r.Commit, r.State, r.Tasks, ""); err != nil {
		return err
	}
	n.strag.published(n.m.Step(), time.Now())
	return nil
}

// redispatch hands the missing shards of a late step out again.
func (n *node) redispatch(ctx context.Context) error {
	missing := n.m.Missing()
	if len(missing) == 0 || !n.strag.due(n.m.outTo()) {
		return nil
	}
	n.opts.Log.Info("re-dispatching straggling shards", "run", n.run, "step", n.m.Step(), "shards", missing)
	n.trace.m.TasksRedelivered.Add(ctx, int64(len(missing)), n.trace.runSet)
	if h := n.opts.Hooks.Redispatched; h != nil {
		h(n.m.Step(), missing)
	}
	return n.publish(ctx, nil, nil, n.m.Tasks(missing), "/s")
}

// resume publishes the current weights version and every missing task.
func (n *node) resume(ctx context.Context) error {
	r := n.m.Resume()
	if r.Done {
		return nil
	}
	n.lastMove = n.opts.Now()
	return n.publishStep(ctx, r)
}

// checkStalled re-dispatches the missing tasks of a step that made no
// progress for four ack-wait periods (tasks lost with a broker's state);
// the suffix gives them fresh message ids so the server does not drop them
// as duplicates. Redelivery of tasks held by dead workers needs none of
// this: the consumer does it after one ack wait.
func (n *node) checkStalled(ctx context.Context) error {
	if n.opts.Now().Sub(n.lastMove) < 4*n.ackWait {
		return nil
	}
	n.redo++
	n.lastMove = n.opts.Now()
	missing := n.m.Missing()
	n.opts.Log.Warn("coordinator: step made no progress; re-dispatching its missing shards", "run", n.run, "step", n.m.Step(), "shards", missing)
	r := n.m.Resume()
	return n.publish(ctx, r.Commit, r.State, r.Tasks, fmt.Sprintf("/r%d", n.redo))
}

// publish sends a commit record and tasks without waiting in between, then
// waits for every ack, and then sends the snapshot: a fenced-out coordinator
// never replaces the snapshot workers start from. Workers rebuild weights
// from gradients, so no task waits for a commit record.
//
// A server without room in its store ends the run (ErrNoRoom) once no step
// has gone through for the grace since it first refused (roomGuard).
func (n *node) publish(ctx context.Context, commit, state *protocol.Params, tasks []protocol.Task, suffix string) error {
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := n.publishOnce(ctx, commit, tasks, suffix)
		if err == nil && state != nil {
			n.snaps.offer(state)
		}
		if err == nil || errors.Is(err, ErrFenced) || ctx.Err() != nil || n.js.Conn().IsClosed() {
			return err
		}
		// Message ids make a retry idempotent: whatever was stored the
		// first time is dropped as a duplicate.
		if denied := publishDenied(n.js.Conn(), commit, tasks); denied != nil {
			return denied
		}
		if protocol.NoRoom(err) {
			n.room.refused(err, n.opts.Now()) // warns of the first
			n.opts.Log.Debug("coordinator: publishing the step found no room; retrying", "run", n.run, "step", n.m.Step(), "err", err)
		} else {
			n.opts.Log.Warn("coordinator: publishing the step failed; retrying", "run", n.run, "step", n.m.Step(), "err", err)
		}
		if err := n.room.expired(n.opts.Now(), n.strag.deadline()); err != nil {
			return err
		}
		if !pace.Wait(ctx, wait) {
			return ctx.Err()
		}
	}
}

func (n *node) publishOnce(ctx context.Context, p *protocol.Params, tasks []protocol.Task, suffix string) error {
	start := time.Now()
	var pf jetstream.PubAckFuture
	if p != nil {
		b, _ := p.MarshalBinary()
		var err error
		pf, err = n.js.PublishAsync(protocol.ParamsSubject(p.Run, p.Step), b,
			jetstream.WithMsgID(protocol.ParamsMsgID(p.Run, p.Step)), jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			return fmt.Errorf("coordinator: publishing the commit record of step %d: %w", p.Step, err)
		}
	}
	var tctx context.Context
	if len(tasks) > 0 {
		tctx = n.trace.stepContext(ctx, tasks[0].Step, int(tasks[0].Epoch))
	}
	futures := make([]jetstream.PubAckFuture, 0, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		msg := nats.NewMsg(protocol.TasksSubject(t.Run))
		msg.Data, _ = t.MarshalBinary()
		telemetry.InjectMsg(tctx, msg)
		f, err := n.js.PublishMsgAsync(msg, jetstream.WithMsgID(protocol.MsgID(t.Run, t.Step, int(t.Shard))+suffix))
		if err != nil {
			return fmt.Errorf("coordinator: publishing %s: %w", t, err)
		}
		futures = append(futures, f)
	}
	if pf != nil {
		select {
		case <-pf.Ok():
		case err := <-pf.Err():
			if err := n.checkFenced(ctx, p, err); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("coordinator: publishing %s: %w", &tasks[i], err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if len(tasks) > 0 {
		n.trace.published(start, len(tasks))
	}
	return nil
}

// finish waits for the final checkpoint and reports the run. A wait longer
// than finishQuiet is said, with why when the object store refuses the
// saves (a full disk), so a run done training does not seem to hang.
//
// It stops, as the loop does, when the node loses the run's lease (serve):
// the coordinator that took the run over writes the same final checkpoint.
// Once that checkpoint is committed, a loss only cuts short the wait for
// the final snapshot, and the run is reported done.
func (n *node) finish(ctx context.Context) (*Result, error) {
	// The last epochs' evaluations, and the checkpoints waiting for them;
	// nothing else runs now, so they rest no more.
	n.evals.rush()
	for n.m.Evaluating() {
		select {
		case res := <-n.evals.results:
			if err := n.evaluated(ctx, res, false); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("coordinator: waiting for the last evaluation: %w", ctx.Err())
		}
	}
	// Said once, and once more if a save fails after that (the first
	// attempt may still be under way).
	said, saidWhy := false, false
	for {
		wait, cancel := context.WithTimeout(ctx, finishQuiet)
		err := n.saver.flush(wait)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("coordinator: waiting for the final checkpoint: %w", ctx.Err())
		}
		failing := n.saver.lastError()
		if said && (saidWhy || failing == nil) {
			continue
		}
		args := []any{"run", n.run, "step", n.m.Step()}
		if failing != nil {
			args = append(args, "failing", failing)
		}
		n.opts.Log.Warn("coordinator: training is done; waiting for the object store to take the final checkpoint", args...)
		said, saidWhy = true, failing != nil
	}
	// The snapshot of the final step: once it is stored, the trimmer purges
	// the run's gradients, which that checkpoint and snapshot cover, and
	// the run leaves none in the broker. The last commit offered it, unless
	// this coordinator replayed that commit or found the run done. A broker
	// that does not take it soon leaves the gradients there; the run is
	// done all the same.
	if !n.snaps.offered(n.m.Step()) {
		n.snaps.offer(n.m.State())
	}
	wait, cancel := context.WithTimeout(ctx, finalSnapshotWait)
	if err := n.snaps.flush(wait); err != nil && ctx.Err() == nil {
		n.opts.Log.Warn("coordinator: the final snapshot is not stored yet; the run's last gradients stay in the grads stream", "run", n.run, "step", n.m.Step())
	}
	cancel()
	n.prog.finish()
	return &Result{
		Run: n.run, Step: n.m.Step(), Epoch: n.m.Epoch(), Digest: n.m.Digest(),
		History: n.m.History(), Resumed: n.resumed, Replayed: n.replayed,
	}, nil
}

// finishQuiet is how long finish waits for the final checkpoint before it
// says that it waits.
const finishQuiet = 2 * time.Second

// finalSnapshotWait bounds finish's wait for the final snapshot.
const finalSnapshotWait = 10 * time.Second

// checkFenced handles a refused commit record. The publish expects the
// step's subject to be empty, so of two coordinators that both believe they
// lead, only one can ever write a step; the other (or this one, resuming)
// finds the version already there and goes on only if it holds the same
// weights.
func (n *node) checkFenced(ctx context.Context, p *protocol.Params, err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence && apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant {
		return fmt.Errorf("coordinator: publishing the commit record of step %d: %w", p.Step, err)
	}
	raw, gerr := n.params.GetLastMsgForSubject(ctx, protocol.ParamsSubject(p.Run, p.Step))
	if gerr != nil {
		return fmt.Errorf("coordinator: checking weights of step %d: %w", p.Step, gerr)
	}
	var have protocol.Params
	if derr := have.UnmarshalBinary(raw.Data); derr != nil {
		return fmt.Errorf("%w: the commit record of step %d (seq %d) is unreadable: %v", ErrFenced, p.Step, raw.Sequence, derr)
	}
	if have.Check != p.Check {
		return fmt.Errorf("%w: step %d was committed with other weights (seq %d)", ErrFenced, p.Step, raw.Sequence)
	}
	return nil
}

// reportStatus counts the workers that sent a heartbeat recently and
// writes the run's live progress for `coordinator status`.
func (n *node) reportStatus(ctx context.Context, replaying, recomputing bool) {
	now := time.Now()
	for id, t := range n.alive {
		if now.Sub(t) > 3*protocol.HeartbeatEvery {
			delete(n.alive, id)
		}
	}
	n.trace.m.WorkersAlive.Record(ctx, int64(len(n.alive)), n.trace.runSet)
	if n.status == nil {
		return
	}
	b, _ := json.Marshal(protocol.Status{Run: n.run, Coordinator: n.opts.ID, Step: n.m.Step(), Epoch: n.m.Epoch(),
		Workers: len(n.alive), Replaying: replaying, Recomputing: recomputing, UnixMilli: now.UnixMilli()})
	sctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, _ = n.status.Put(sctx, n.run, b)
}
