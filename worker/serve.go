package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/telemetry"
)

// serve handles one task message from start to acknowledgment.
func (w *Worker) serve(ctx context.Context, msg jetstream.Msg, kv jetstream.KeyValue, params jetstream.Stream) {
	start := time.Now()
	var t protocol.Task
	if err := t.UnmarshalBinary(msg.Data()); err != nil {
		w.reject(msg, "malformed task", err)
		return
	}
	var redelivered int64
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		redelivered = int64(md.NumDelivered - 1)
		w.metrics.TasksRedelivered.Add(ctx, 1, w.idAttr)
	}
	ctx, span := w.tr.Start(telemetry.Extract(ctx, msg.Headers()), telemetry.SpanTask, trace.WithAttributes(
		attribute.String(telemetry.AttrRun, t.Run), attribute.Int64(telemetry.AttrStep, int64(t.Step)),
		attribute.Int(telemetry.AttrEpoch, int(t.Epoch)), attribute.Int(telemetry.AttrShard, int(t.Shard)),
		attribute.String(telemetry.AttrWorker, w.opts.ID), attribute.Int64(telemetry.AttrRedelivery, redelivered)))
	defer span.End()
	run, err := w.runs.get(ctx, kv, t.Run)
	if err != nil {
		w.reject(msg, "task for an unusable run", err)
		return
	}
	if err := run.checkTask(&t); err != nil {
		w.reject(msg, "task does not fit its run", err)
		return
	}
	_, fetch := w.tr.Start(ctx, telemetry.SpanTaskFetch)
	weights, digest, err := run.params(ctx, params, w.versions, t.Step)
	fetch.End()
	if errors.Is(err, errStale) {
		w.reject(msg, "stale task", err)
		return
	}
	if err != nil {
		w.opts.Log.Warn("worker: fetching weights failed; task will be redelivered", "task", t.String(), "err", err)
		_ = msg.Nak()
		return
	}

	stop := keepAlive(msg, w.ackEvery)
	_, compute := w.tr.Start(ctx, telemetry.SpanTaskCompute)
	g, err := run.gradient(&t, weights)
	compute.End()
	stop()
	if err != nil {
		w.reject(msg, "gradient failed", err)
		return
	}
	if err := run.verified(ctx); err != nil {
		w.opts.Log.Warn("worker: weights failed their check; task will be redelivered", "task", t.String(), "err", err)
		_ = msg.Nak()
		return
	}
	g.Worker = w.opts.ID
	g.Weights = protocol.ShortDigest(digest)
	var buf []byte
	select {
	case buf = <-w.spare:
	default:
	}
	b, _ := g.AppendBinary(buf[:0])
	w.inflight.Add(1)
	w.out <- outgoing{ctx: ctx, msg: msg, task: t, data: b, start: start}
}

// reject logs a task that can never succeed once, with where it came from,
// and terminates it so it is not redelivered.
func (w *Worker) reject(msg jetstream.Msg, what string, err error) {
	var where string
	if md, mErr := msg.Metadata(); mErr == nil {
		where = fmt.Sprintf(" (stream %s seq %d)", md.Stream, md.Sequence.Stream)
	}
	w.opts.Log.Warn("worker: dropping "+what+" on "+msg.Subject()+where, "err", err)
	_ = msg.Term()
}

// keepAlive tells the server every interval that msg is still being worked
// on, until the returned stop is called.
func keepAlive(msg jetstream.Msg, every time.Duration) (stop func()) {
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() { t.Stop() }
}
