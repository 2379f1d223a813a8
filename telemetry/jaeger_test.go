package telemetry

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/telemetry/jaegertest"
)

// TestJaegerEndToEnd sends a step span's context from a "coordinator" to a
// "worker" through a real NATS message, exports both processes' spans to a
// real Jaeger (one over OTLP gRPC, one over OTLP HTTP) and reads them back as
// one trace with the worker's task span under the coordinator's step span.
func TestJaegerEndToEnd(t *testing.T) {
	j := jaegertest.Start(t)
	clearEnv(t)
	ctx := context.Background()

	// The two processes differ only in their environment at Setup time.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPGRPCEndpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolGRPC)
	coord, err := Setup(ctx, Options{Service: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPHTTPEndpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolHTTP)
	work, err := Setup(ctx, Options{Service: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if coord.Protocol() != ProtocolGRPC || work.Protocol() != ProtocolHTTP {
		t.Fatalf("protocols %q %q", coord.Protocol(), work.Protocol())
	}

	srv := natstest.Start(t, server.Options{})
	coordNC, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer coordNC.Close()
	workNC, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer workNC.Close()
	tasks, err := workNC.SubscribeSync("jettrain.test.tasks")
	if err != nil {
		t.Fatal(err)
	}
	if err := workNC.Flush(); err != nil {
		t.Fatal(err)
	}

	const run = "e2e-run"
	// Coordinator: epoch > step > step.publish; the step's context rides in
	// the task message.
	ectx, epoch := coord.Tracer().Start(ctx, SpanEpoch, trace.WithAttributes(
		attribute.String(AttrRun, run), attribute.Int(AttrEpoch, 1)))
	sctx, step := coord.Tracer().Start(ectx, SpanStep, trace.WithAttributes(
		attribute.String(AttrRun, run), attribute.Int(AttrEpoch, 1), attribute.Int64(AttrStep, 42)))
	_, publish := coord.Tracer().Start(sctx, SpanStepPublish)
	msg := nats.NewMsg("jettrain.test.tasks")
	msg.Data = []byte("task 42/0")
	Inject(sctx, msg.Header)
	if err := coordNC.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	publish.End()

	// Worker: the message as it arrived over NATS.
	got, err := tasks.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("traceparent") == "" {
		t.Fatalf("no traceparent in the delivered headers: %v", got.Header)
	}
	tctx, task := work.Tracer().Start(Extract(ctx, got.Header), SpanTask, trace.WithAttributes(
		attribute.String(AttrRun, run), attribute.Int64(AttrStep, 42), attribute.Int(AttrShard, 0),
		attribute.String(AttrWorker, "w1"), attribute.Int(AttrRedelivery, 0)))
	_, compute := work.Tracer().Start(tctx, SpanTaskCompute)
	compute.End()
	task.End()

	_, combine := coord.Tracer().Start(sctx, SpanStepCombine)
	combine.End()
	step.End()
	epoch.End()

	traceID := step.SpanContext().TraceID().String()
	stepID := step.SpanContext().SpanID().String()
	taskID := task.SpanContext().SpanID().String()
	if task.SpanContext().TraceID().String() != traceID {
		t.Fatal("worker span is in another trace before export")
	}
	sctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := coord.Shutdown(sctx2); err != nil {
		t.Fatal(err)
	}
	if err := work.Shutdown(sctx2); err != nil {
		t.Fatal(err)
	}

	complete := func(tr jaegertest.Trace) error {
		if tr.TraceID != traceID {
			return fmt.Errorf("trace %s not listed yet", traceID)
		}
		if len(tr.Spans) < 6 {
			return fmt.Errorf("trace has %d of 6 spans", len(tr.Spans))
		}
		return nil
	}
	j.WaitTrace(t, "coordinator", 30*time.Second, complete)
	found := j.WaitTrace(t, "worker", 30*time.Second, complete)

	st, ok := found.Span(stepID)
	if !ok || st.OperationName != SpanStep || found.Service(st) != "coordinator" {
		t.Fatalf("step span missing or wrong: %+v", st)
	}
	tk, ok := found.Span(taskID)
	if !ok || tk.OperationName != SpanTask || found.Service(tk) != "worker" {
		t.Fatalf("task span missing or wrong: %+v", tk)
	}
	if tk.Parent() != stepID {
		t.Fatalf("worker task's parent is %q, want the coordinator step %q\n%s", tk.Parent(), stepID, found.Tree())
	}
	if v := tk.Tag(AttrWorker); v != "w1" {
		t.Fatalf("task %s = %v", AttrWorker, v)
	}
	for _, s := range found.Spans {
		if s.OperationName == SpanTaskCompute && s.Parent() != taskID {
			t.Fatalf("compute span's parent is %q, want the task", s.Parent())
		}
	}
	t.Logf("trace %s in Jaeger:\n%s", traceID, found.Tree())
}
