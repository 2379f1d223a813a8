package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// serve handles one task message from start to acknowledgment.
func (w *Worker) serve(ctx context.Context, msg jetstream.Msg, kv jetstream.KeyValue, params jetstream.Stream) {
	start := time.Now()
	var t protocol.Task
	if err := t.UnmarshalBinary(msg.Data()); err != nil {
		w.reject(msg, "malformed task", err)
		return
	}
	run, err := w.runs.get(ctx, kv, t.Run)
	if err != nil {
		w.reject(msg, "task for an unusable run", err)
		return
	}
	if err := run.checkTask(&t); err != nil {
		w.reject(msg, "task does not fit its run", err)
		return
	}
	weights, digest, err := run.params(ctx, params, t.Step)
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
	g, err := run.gradient(&t, weights)
	stop()
	if err != nil {
		w.reject(msg, "gradient failed", err)
		return
	}
	g.Worker = w.opts.ID
	g.Weights = protocol.ShortDigest(digest)
	b, _ := g.MarshalBinary()
	if _, err := w.js.Publish(ctx, protocol.GradsSubject(t.Run), b, jetstream.WithMsgID(protocol.MsgID(t.Run, t.Step, int(t.Shard)))); err != nil {
		w.opts.Log.Warn("worker: publishing a gradient failed; task will be redelivered", "task", t.String(), "err", err)
		_ = msg.Nak()
		return
	}
	if err := msg.Ack(); err != nil {
		w.opts.Log.Warn("worker: ack failed; the gradient is published and a redelivery will be deduplicated", "task", t.String(), "err", err)
	}
	w.done.Add(1)
	if w.opts.Observer != nil {
		w.opts.Observer.TaskDone(&t, g, time.Since(start))
	}
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
