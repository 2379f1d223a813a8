package coordinator

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/telemetry"
)

// tracing follows the run with spans and metrics: an epoch span, a step
// trace per step (linked to the epoch) from its publish to its commit (workers' task spans become its
// children through the trace context in the task headers), and the
// checkpoint and replay spans. With no telemetry configured every call is a
// no-op.
type tracing struct {
	tr      trace.Tracer
	m       *telemetry.Metrics
	runAttr attribute.KeyValue
	runSet  metric.MeasurementOption

	epochCtx   context.Context
	epochSpan  trace.Span
	epochNum   int                // the epoch epochSpan covers
	evaluating map[int]trace.Span // spans of ended epochs whose evaluations are out, by epoch
	stepCtx    context.Context
	stepSpan   trace.Span
	waitSpan   trace.Span
	stepStart  time.Time
}

func newTracing(tr trace.Tracer, m *telemetry.Metrics, run string) *tracing {
	a := attribute.String(telemetry.AttrRun, run)
	return &tracing{tr: tr, m: m, runAttr: a, runSet: metric.WithAttributes(a)}
}

// stepContext starts (once) the spans of the step about to be published and
// returns the context to inject into its tasks.
func (t *tracing) stepContext(ctx context.Context, step uint64, epoch int) context.Context {
	if t.stepSpan != nil {
		return t.stepCtx
	}
	if t.epochSpan == nil {
		t.epochCtx, t.epochSpan = t.tr.Start(context.WithoutCancel(ctx), telemetry.SpanEpoch,
			trace.WithAttributes(t.runAttr, attribute.Int(telemetry.AttrEpoch, epoch)))
		t.epochNum = epoch
	}
	t.stepStart = time.Now()
	// Each step is a trace of its own, linked to its epoch's span, so a
	// trace stays small enough to read however long the epoch is.
	t.stepCtx, t.stepSpan = t.tr.Start(t.epochCtx, telemetry.SpanStep, trace.WithNewRoot(),
		trace.WithLinks(trace.LinkFromContext(t.epochCtx)),
		trace.WithAttributes(t.runAttr, attribute.Int(telemetry.AttrEpoch, epoch), attribute.Int64(telemetry.AttrStep, int64(step))))
	return t.stepCtx
}

// published marks the end of publishing a step's work; waiting begins.
func (t *tracing) published(publishStart time.Time, tasks int) {
	if t.stepSpan == nil {
		return
	}
	_, pub := t.tr.Start(t.stepCtx, telemetry.SpanStepPublish, trace.WithTimestamp(publishStart))
	pub.SetAttributes(attribute.Int("jettrain.tasks", tasks))
	pub.End()
	if t.waitSpan == nil {
		_, t.waitSpan = t.tr.Start(t.stepCtx, telemetry.SpanStepWait)
	}
	t.m.TasksPublished.Add(context.Background(), int64(tasks), t.runSet)
}

// committed ends the current step's spans; applyStart is when the gradient
// that completed it was handed to the machine. A step that ends an epoch
// leaves the epoch's span open until the epoch's evaluation is in
// (epochDone); the next step opens the next epoch's.
func (t *tracing) committed(step uint64, samples int, applyStart time.Time, epochEnded bool) {
	bg := context.Background()
	if t.stepSpan != nil {
		if t.waitSpan != nil {
			t.waitSpan.End(trace.WithTimestamp(applyStart))
		}
		_, apply := t.tr.Start(t.stepCtx, telemetry.SpanStepApply, trace.WithTimestamp(applyStart))
		apply.End()
		t.stepSpan.End()
		t.m.StepDuration.Record(bg, time.Since(t.stepStart).Seconds(), t.runSet)
	}
	t.stepSpan, t.waitSpan = nil, nil
	t.m.Samples.Add(bg, int64(samples), t.runSet)
	t.m.Step.Record(bg, int64(step), t.runSet)
	if epochEnded && t.epochSpan != nil {
		if t.evaluating == nil {
			t.evaluating = map[int]trace.Span{}
		}
		t.evaluating[t.epochNum] = t.epochSpan
		t.epochSpan = nil
	}
}

// epochDone ends the span of an epoch waiting for its evaluation, if it has
// one (a node that replayed across an epoch's end has none), with the
// epoch's results, and records them as metrics.
func (t *tracing) epochDone(epoch *objstore.HistoryEntry) {
	bg := context.Background()
	if s, ok := t.evaluating[epoch.Epoch]; ok {
		delete(t.evaluating, epoch.Epoch)
		s.SetAttributes(attribute.Float64("jettrain.valid_acc", epoch.ValidAcc), attribute.Float64("jettrain.train_loss", epoch.TrainLoss))
		s.End()
	}
	split := func(s string) metric.MeasurementOption {
		return metric.WithAttributes(t.runAttr, attribute.String(telemetry.AttrSplit, s))
	}
	t.m.Epoch.Record(bg, int64(epoch.Epoch+1), t.runSet)
	t.m.Loss.Record(bg, epoch.TrainLoss, split("train"))
	t.m.Accuracy.Record(bg, epoch.TrainAcc, split("train"))
	t.m.Loss.Record(bg, epoch.ValidLoss, split("valid"))
	t.m.Accuracy.Record(bg, epoch.ValidAcc, split("valid"))
	t.m.SamplesPerSecond.Record(bg, epoch.SamplesPerS, t.runSet)
}

// end closes any open span when the node stops.
func (t *tracing) end() {
	for _, s := range []trace.Span{t.waitSpan, t.stepSpan, t.epochSpan} {
		if s != nil {
			s.End()
		}
	}
	for _, s := range t.evaluating { // ending spans: the order is of no matter
		s.End()
	}
	t.stepSpan, t.waitSpan, t.epochSpan, t.evaluating = nil, nil, nil, nil
}
