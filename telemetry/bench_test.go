package telemetry

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// discard is a span exporter that drops everything, so the benchmark
// measures the in-process cost (span creation, batching, propagation)
// without the network.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// coordinatorStep is the coordinator's telemetry for one step: the step span
// and its four phases, one injected header per shard, three metric records.
func coordinatorStep(ctx context.Context, tr trace.Tracer, m *Metrics, headers []nats.Header, step int64) {
	run := attribute.String(AttrRun, "bench")
	ctx, span := tr.Start(ctx, SpanStep, trace.WithAttributes(run, attribute.Int64(AttrStep, step), attribute.Int(AttrEpoch, 1)))
	_, pub := tr.Start(ctx, SpanStepPublish)
	for i := range headers {
		headers[i] = nats.Header{}
		Inject(ctx, headers[i])
	}
	pub.End()
	_, wait := tr.Start(ctx, SpanStepWait)
	wait.End()
	for _, name := range []string{SpanStepCombine, SpanStepApply} {
		_, s := tr.Start(ctx, name)
		s.End()
	}
	attrs := metric.WithAttributes(run)
	m.StepDuration.Record(ctx, 0.003, attrs)
	m.Samples.Add(ctx, 256, attrs)
	m.Loss.Record(ctx, 0.5, metric.WithAttributes(run, attribute.String(AttrSplit, "train")))
	span.End()
}

// workerTask is a worker's telemetry for one shard task: extract, the task
// span with three phases, two metric records.
func workerTask(tr trace.Tracer, m *Metrics, h nats.Header, step int64, shard int) {
	tctx, task := tr.Start(Extract(context.Background(), h), SpanTask, trace.WithAttributes(
		attribute.String(AttrRun, "bench"), attribute.Int64(AttrStep, step), attribute.Int(AttrShard, shard),
		attribute.String(AttrWorker, "w1"), attribute.Int(AttrRedelivery, 0)))
	for _, name := range []string{SpanTaskFetch, SpanTaskCompute, SpanTaskPublish} {
		_, s := tr.Start(tctx, name)
		s.End()
	}
	m.TaskDuration.Record(tctx, 0.002, metric.WithAttributes(attribute.String(AttrWorker, "w1")))
	m.GradientBytes.Add(tctx, 407040)
	task.End()
}

type benchSetup struct {
	name   string
	tracer func() (trace.Tracer, func())
	meter  func() (metric.Meter, func())
}

var benchSetups = []benchSetup{
	{"noop", func() (trace.Tracer, func()) { return tracenoop.NewTracerProvider().Tracer("b"), func() {} },
		func() (metric.Meter, func()) { return metricnoop.NewMeterProvider().Meter("b"), func() {} }},
	{"sdk", func() (trace.Tracer, func()) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
		return tp.Tracer("b"), func() { _ = tp.Shutdown(context.Background()) }
	}, func() (metric.Meter, func()) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		return mp.Meter("b"), func() { _ = mp.Shutdown(context.Background()) }
	}},
}

// benchTelemetry runs f under each setup and reports its cost as a
// percentage of a 2 ms step, the fastest step time measured on this kind of
// machine (MLP, batch 64).
func benchTelemetry(b *testing.B, f func(tr trace.Tracer, m *Metrics, i int64)) {
	for _, c := range benchSetups {
		b.Run(c.name, func(b *testing.B) {
			tr, stopT := c.tracer()
			defer stopT()
			mt, stopM := c.meter()
			defer stopM()
			m, err := NewMetrics(mt)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var i int64
			for b.Loop() {
				i++
				f(tr, m, i)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2e6*100, "%of2ms")
		})
	}
}

// BenchmarkCoordinatorStep is the coordinator's per-step cost with 4 shards.
func BenchmarkCoordinatorStep(b *testing.B) {
	headers := make([]nats.Header, 4)
	benchTelemetry(b, func(tr trace.Tracer, m *Metrics, i int64) {
		coordinatorStep(context.Background(), tr, m, headers, i)
	})
}

// BenchmarkWorkerTask is a worker's per-task cost; tasks of one step run on
// different workers in parallel, so one task's cost is on the step's
// critical path.
func BenchmarkWorkerTask(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("b").Start(context.Background(), SpanStep)
	h := nats.Header{}
	Inject(ctx, h)
	span.End()
	benchTelemetry(b, func(tr trace.Tracer, m *Metrics, i int64) { workerTask(tr, m, h, i, 0) })
}

// BenchmarkStepTelemetry is a whole 4-shard step's telemetry in one process
// (coordinator plus all four tasks serially): the upper bound when every
// worker runs inside the coordinator.
func BenchmarkStepTelemetry(b *testing.B) {
	headers := make([]nats.Header, 4)
	benchTelemetry(b, func(tr trace.Tracer, m *Metrics, i int64) {
		coordinatorStep(context.Background(), tr, m, headers, i)
		for shard, h := range headers {
			workerTask(tr, m, h, i, shard)
		}
	})
}

// BenchmarkInjectExtract is one task's trace-context round trip through
// NATS headers.
func BenchmarkInjectExtract(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("b").Start(context.Background(), SpanStep)
	defer span.End()
	b.ReportAllocs()
	for b.Loop() {
		h := nats.Header{}
		Inject(ctx, h)
		if !trace.SpanContextFromContext(Extract(context.Background(), h)).IsValid() {
			b.Fatal("lost the span context")
		}
	}
}
