package worker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// heldTask is a task message whose gradient is computed, waiting to be
// acknowledged once that gradient is stored.
type heldTask struct {
	ctx   context.Context // the task's span context
	msg   jetstream.Msg
	task  protocol.Task
	start time.Time
}

// outgoing is a computed gradient on its way to the grads stream, with the
// tasks to acknowledge once it is stored: one, or the first few of a step
// sent as one gradient.
type outgoing struct {
	tasks   []heldTask
	buf     *sentBuffer        // the encoded gradient, held by whoever was handed it
	msgs    []protocol.Encoded // its messages in data: one, or its parts
	shard   int                // the first shard it covers
	weights [8]byte            // the check of the weights it was computed on
}

// outgoingQueue is how many computed gradients may wait for the publisher
// before the task loop waits too.
const outgoingQueue = 2

// publish sends gradients in the order they were computed, from its own
// goroutine: handing 800 KB to the client can take as long as the server
// needs to read it (always, over an in-process connection), and the task
// loop computes the next shard meanwhile. It returns when out is closed.
func (w *Worker) publish(out <-chan outgoing) {
	for o := range out {
		w.publishOne(o)
	}
}

func (w *Worker) publishOne(o outgoing) {
	first := &o.tasks[0]
	t := &first.task
	buf := o.buf
	_, pub := w.tr.Start(o.tasks[len(o.tasks)-1].ctx, telemetry.SpanTaskPublish, trace.WithAttributes(attribute.Int(telemetry.AttrBytes, len(buf.data))))
	subject := protocol.GradSubject(t.Run, t.Step, o.shard)
	id := protocol.GradMsgID(t.Run, t.Step, o.shard, len(o.tasks), o.weights)
	keys := make([]handoff.Key, 0, len(o.msgs))
	futs := make([]jetstream.PubAckFuture, len(o.msgs))
	from := 0
	for i, m := range o.msgs {
		if len(o.msgs) > 1 {
			id = protocol.GradPartMsgID(t.Run, t.Step, o.shard, len(o.tasks), o.weights, m.Offset, m.Values)
		}
		msg := &nats.Msg{Subject: subject, Data: buf.data[from:m.End], Header: nats.Header{protocol.WorkerHeader: []string{w.opts.ID}}}
		if x := w.opts.Handoff; x != nil {
			k := handoff.Key{MsgID: id, Worker: w.opts.ID}
			buf.holds.Add(1)
			x.Put(t.Run, t.Step, k, msg.Data, buf.release)
			keys = append(keys, k)
		}
		var err error
		// A gradient in more parts than the client's window of pending
		// publishes waits for room, as long as for an ack, rather than
		// failing midway.
		futs[i], err = w.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), jetstream.WithStallWait(publishTimeout))
		if err != nil {
			pub.End()
			w.unstored(o.tasks, keys, err)
			w.inflight.Done()
			return
		}
		from = m.End
	}
	// The tasks are acknowledged only once the gradient is stored: all of
	// its parts.
	go func() {
		defer w.inflight.Done()
		defer pub.End()
		for _, fut := range futs {
			select {
			case <-fut.Ok():
			case err := <-fut.Err():
				w.unstored(o.tasks, keys, err)
				return
			}
		}
		if n := w.pubFails.stored(); n > 0 {
			w.opts.Log.Info("worker: gradients are stored again", "worker", w.opts.ID, "failed_before", n)
		}
		// Acknowledged: the client will not send the bytes again, so they
		// can carry the next gradient. (After an error it might still
		// retry: those are never reused.)
		buf.release()
		for _, h := range o.tasks {
			if h.msg == nil {
				continue // a shard computed without its task (serveMissing)
			}
			if err := w.held.ack(h.msg); err != nil {
				w.opts.Log.Warn("worker: ack failed; the gradient is stored and a redelivery will be deduplicated", "task", h.task.String(), "err", err)
			}
			w.last.set(h.task.Run, h.task.Step)
			w.done.Add(1)
			w.opts.Log.Debug("task done", "run", h.task.Run, "step", h.task.Step, "shard", h.task.Shard, "took", time.Since(h.start))
			w.metrics.TasksCompleted.Add(h.ctx, 1, w.idAttr)
			w.metrics.TaskDuration.Record(h.ctx, time.Since(h.start).Seconds(), w.idAttr)
		}
		w.metrics.GradientBytes.Add(first.ctx, int64(len(buf.data)), w.idAttr)
	}()
}

// unstored handles a gradient the broker did not store: its messages
// leave the coordinator's exchange (if the broker stored them after all,
// the coordinator reads them from the stream), and its tasks go back
// (publishFailed).
func (w *Worker) unstored(tasks []heldTask, keys []handoff.Key, err error) {
	for _, k := range keys {
		w.opts.Handoff.Drop(k)
	}
	w.publishFailed(tasks, err)
}

// sentBuffer is the encoding of a gradient on its way out, held by its
// publish until the broker acknowledges it and by the exchange (or the
// coordinator that took them) for each of its messages handed off, by
// each peer offered it (Peers) and, for a sum lent by its replica, by the
// replica until its step is applied; the last release hands it back for
// the next gradient.
type sentBuffer struct {
	data  []byte
	whole []byte // the buffer data is in, to reuse
	holds atomic.Int32
	spare chan<- []byte
}

func (b *sentBuffer) release() {
	if b.holds.Add(-1) != 0 {
		return
	}
	select {
	case b.spare <- b.whole:
	default:
	}
}

// publishFailed returns the tasks of a gradient the broker did not store
// for redelivery: at once, but after retryStoreAfter if the broker refused
// it for want of room, which a retry at once would meet again. Their
// redelivery fails again as long as the broker stores nothing (it is down,
// or its disk is full), so the worker warns at most once a minute, with a
// count of the failures since, and notes the rest at debug level.
func (w *Worker) publishFailed(tasks []heldTask, err error) {
	var delay time.Duration
	if f, ok := protocol.RefusalOf(tasks[0].task.Run, w.opts.ID, err); ok {
		delay = retryStoreAfter
		w.reportRefusal(f)
	}
	w.handBack(tasks, delay)
	if warn, unreported := w.pubFails.failed(time.Now()); warn {
		w.opts.Log.Warn("worker: publishing a gradient failed; its tasks will be redelivered"+w.unstoredHint(err), "worker", w.opts.ID,
			"task", tasks[0].task.String(), "tasks", len(tasks), "failed_since_last_warning", unreported, "err", err)
	} else {
		w.opts.Log.Debug("worker: publishing a gradient failed again; its tasks will be redelivered", "task", tasks[0].task.String(), "err", err)
	}
}

// reportRefusal tells the coordinators of f's run that the broker refused
// this worker's gradient for want of room, at most once every
// retryStoreAfter: a coordinator whose own messages are still taken (as
// under an account's quota that only the large gradients pass) stops the
// run with one clear line instead of waiting while the workers warn.
func (w *Worker) reportRefusal(f *protocol.Refusal) {
	if !w.pubFails.report(time.Now()) {
		return
	}
	b, _ := f.MarshalBinary()
	_ = w.nc.Publish(protocol.RefusalSubject, b)
}

// unstoredHint says what a publish that timed out on a live connection
// may mean. A server that refuses the NATS user the gradients' subjects
// says so only on the connection (its last error). Otherwise, a broker
// whose store failed a write (a full or read-only disk) stores nothing
// more and tells no client so. Its own log says; the worker cannot tell
// that from a slow broker.
func (w *Worker) unstoredHint(err error) string {
	if !w.nc.IsConnected() || !(errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		return ""
	}
	if last := natsconn.PublishDenied(w.nc, protocol.GradsPrefix); last != nil {
		return " (the NATS user may not publish gradients: " + last.Error() + "; allow jt.grads.> in its permissions and the run goes on)"
	}
	return " (the broker is connected but stored nothing in time: if its log shows a critical write error, its disk is full or not writable; restart it with room and the run goes on)"
}

// publishFailures keeps count of a worker's gradients the broker did not
// store, for publishFailed's warnings.
type publishFailures struct {
	mu         sync.Mutex
	streak     int // failures since a gradient was last stored
	unreported int // failures since the last warning
	warned     time.Time
	reported   time.Time // when a refusal was last reported to the coordinators
}

// publishWarnEvery is how often failed publishes are warned of at most,
// streaks or not: publishes sent during an outage may still fail after a
// gradient is stored again, when their wait for an ack ends, and must not
// warn again at once.
const publishWarnEvery = time.Minute

// failed counts a failure at now and reports whether to warn of it, and how
// many failures came since the last warning.
func (p *publishFailures) failed(now time.Time) (warn bool, unreported int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.streak++
	if !pace.Due(&p.warned, now, publishWarnEvery) {
		p.unreported++
		return false, 0
	}
	unreported, p.unreported = p.unreported, 0
	return true, unreported
}

// report reports whether a refusal at now is to be reported to the
// coordinators: the first one of retryStoreAfter is.
func (p *publishFailures) report(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return pace.Due(&p.reported, now, retryStoreAfter)
}

// stored ends a streak of failures: it returns its length (0 if there was
// none).
func (p *publishFailures) stored() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.streak
	p.streak = 0
	return n
}

// failing reports whether a gradient failed to be stored since one was
// last stored.
func (p *publishFailures) failing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.streak > 0
}

// retryStoreAfter is how long the tasks of a gradient the broker refused
// for want of room wait before they are redelivered.
const retryStoreAfter = time.Second

// handBack returns tasks for redelivery after delay (see holdings.nak).
func (w *Worker) handBack(tasks []heldTask, delay time.Duration) {
	for _, h := range tasks {
		if h.msg != nil {
			w.held.nak(h.msg, delay)
		}
	}
}
