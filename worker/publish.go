package worker

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

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
	data    []byte  // the encoded gradient
	shard   int     // the first shard it covers
	weights [8]byte // the check of the weights it was computed on
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
	_, pub := w.tr.Start(o.tasks[len(o.tasks)-1].ctx, telemetry.SpanTaskPublish, trace.WithAttributes(attribute.Int(telemetry.AttrBytes, len(o.data))))
	fut, err := w.js.PublishAsync(protocol.GradSubject(t.Run, t.Step, o.shard), o.data,
		jetstream.WithMsgID(protocol.GradMsgID(t.Run, t.Step, o.shard, len(o.tasks), o.weights)))
	if err != nil {
		pub.End()
		w.handBack(o.tasks, "publishing a gradient failed; task will be redelivered", err)
		w.inflight.Done()
		return
	}
	// The tasks are acknowledged only once the gradient is stored.
	go func() {
		defer w.inflight.Done()
		defer pub.End()
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			w.handBack(o.tasks, "publishing a gradient failed; task will be redelivered", err)
			return
		}
		// Acknowledged: the client will not send the bytes again, so they
		// can carry the next gradient. (After an error it might still
		// retry: those are dropped.)
		select {
		case w.spare <- o.data:
		default:
		}
		for _, h := range o.tasks {
			if err := h.msg.Ack(); err != nil {
				w.opts.Log.Warn("worker: ack failed; the gradient is stored and a redelivery will be deduplicated", "task", h.task.String(), "err", err)
			}
			w.done.Add(1)
			w.opts.Log.Debug("task done", "run", h.task.Run, "step", h.task.Step, "shard", h.task.Shard, "took", time.Since(h.start))
			w.metrics.TasksCompleted.Add(h.ctx, 1, w.idAttr)
			w.metrics.TaskDuration.Record(h.ctx, time.Since(h.start).Seconds(), w.idAttr)
		}
		w.metrics.GradientBytes.Add(first.ctx, int64(len(o.data)), w.idAttr)
	}()
}

// handBack returns tasks for redelivery.
func (w *Worker) handBack(tasks []heldTask, why string, err error) {
	for _, h := range tasks {
		w.opts.Log.Warn("worker: "+why, "task", h.task.String(), "err", err)
		_ = h.msg.Nak()
	}
}
