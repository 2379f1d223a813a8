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

// tracedStep does the telemetry work of one training step with the given
// number of shards, as the coordinator and workers do it: the step span and
// its four phases, per shard an injected task message, the extracted task
// span with three phases, and the step's metrics.
func tracedStep(ctx context.Context, tr trace.Tracer, m *Metrics, shards int, step int64) {
	run := attribute.String(AttrRun, "bench")
	ctx, span := tr.Start(ctx, SpanStep, trace.WithAttributes(run, attribute.Int64(AttrStep, step), attribute.Int(AttrEpoch, 1)))
	_, pub := tr.Start(ctx, SpanStepPublish)
	headers := make([]nats.Header, shards)
	for i := range headers {
		headers[i] = nats.Header{}
		Inject(ctx, headers[i])
	}
	pub.End()
	_, wait := tr.Start(ctx, SpanStepWait)
	for i, h := range headers {
		tctx, task := tr.Start(Extract(context.Background(), h), SpanTask, trace.WithAttributes(
			run, attribute.Int64(AttrStep, step), attribute.Int(AttrShard, i),
			attribute.String(AttrWorker, "w1"), attribute.Int(AttrRedelivery, 0)))
		for _, name := range []string{SpanTaskFetch, SpanTaskCompute, SpanTaskPublish} {
			_, s := tr.Start(tctx, name)
			s.End()
		}
		m.TaskDuration.Record(tctx, 0.002, metric.WithAttributes(attribute.String(AttrWorker, "w1")))
		m.GradientBytes.Add(tctx, 407040)
		task.End()
	}
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

// BenchmarkStepTelemetry reports the telemetry cost of one step with 4
// shards (11 + 4×4 spans, 4 inject/extract pairs, 6 metric records) and that
// cost as a percentage of a 2 ms step, the fastest measured step time.
func BenchmarkStepTelemetry(b *testing.B) {
	for _, c := range []struct {
		name   string
		tracer func() (trace.Tracer, func())
		meter  func() (metric.Meter, func())
	}{
		{"noop", func() (trace.Tracer, func()) { return tracenoop.NewTracerProvider().Tracer("b"), func() {} },
			func() (metric.Meter, func()) { return metricnoop.NewMeterProvider().Meter("b"), func() {} }},
		{"sdk", func() (trace.Tracer, func()) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
			return tp.Tracer("b"), func() { _ = tp.Shutdown(context.Background()) }
		}, func() (metric.Meter, func()) {
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			return mp.Meter("b"), func() { _ = mp.Shutdown(context.Background()) }
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr, stopT := c.tracer()
			defer stopT()
			mt, stopM := c.meter()
			defer stopM()
			m, err := NewMetrics(mt)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var step int64
			for b.Loop() {
				step++
				tracedStep(ctx, tr, m, 4, step)
			}
			perStep := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(perStep/2e6*100, "%of2ms-step")
		})
	}
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
