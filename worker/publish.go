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

// outgoing is a computed gradient on its way to the grads stream, with the
// task message to acknowledge once it is stored.
type outgoing struct {
	ctx   context.Context // the task's span context
	msg   jetstream.Msg
	task  protocol.Task
	data  []byte // the encoded gradient
	start time.Time
}

// outgoingQueue is how many computed gradients may wait for the publisher
// before the task loop waits too.
const outgoingQueue = 2

// publish sends gradients in the order they were computed, from its own
// goroutine: handing 400 KB to the client can take as long as the server
// needs to read it (always, over an in-process connection), and the task
// loop computes the next shard meanwhile. It returns when out is closed.
func (w *Worker) publish(out <-chan outgoing) {
	for o := range out {
		w.publishOne(o)
	}
}

func (w *Worker) publishOne(o outgoing) {
	t := &o.task
	_, pub := w.tr.Start(o.ctx, telemetry.SpanTaskPublish, trace.WithAttributes(attribute.Int(telemetry.AttrBytes, len(o.data))))
	fut, err := w.js.PublishAsync(protocol.GradsSubject(t.Run), o.data, jetstream.WithMsgID(protocol.MsgID(t.Run, t.Step, int(t.Shard))))
	if err != nil {
		pub.End()
		w.opts.Log.Warn("worker: publishing a gradient failed; task will be redelivered", "task", t.String(), "err", err)
		_ = o.msg.Nak()
		w.inflight.Done()
		return
	}
	// The task is acknowledged only once the gradient is stored.
	go func() {
		defer w.inflight.Done()
		defer pub.End()
		select {
		case <-fut.Ok():
		case err := <-fut.Err():
			w.opts.Log.Warn("worker: publishing a gradient failed; task will be redelivered", "task", t.String(), "err", err)
			_ = o.msg.Nak()
			return
		}
		// Acknowledged: the client will not send the bytes again, so they
		// can carry the next gradient. (After an error it might still
		// retry: those are dropped.)
		select {
		case w.spare <- o.data:
		default:
		}
		if err := o.msg.Ack(); err != nil {
			w.opts.Log.Warn("worker: ack failed; the gradient is stored and a redelivery will be deduplicated", "task", t.String(), "err", err)
		}
		w.done.Add(1)
		w.opts.Log.Debug("task done", "run", t.Run, "step", t.Step, "shard", t.Shard, "took", time.Since(o.start))
		w.metrics.TasksCompleted.Add(o.ctx, 1, w.idAttr)
		w.metrics.GradientBytes.Add(o.ctx, int64(len(o.data)), w.idAttr)
		w.metrics.TaskDuration.Record(o.ctx, time.Since(o.start).Seconds(), w.idAttr)
	}()
}
