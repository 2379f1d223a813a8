package cli

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jettrain/jettrain/telemetry/jaegertest"
)

// TestTracesReachJaeger trains a short run with in-process workers exporting
// to a real Jaeger, then reads the traces back: a worker's task span must be
// the child of the coordinator's step span, in the same trace.
func TestTracesReachJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPGRPCEndpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "200")

	dir := t.TempDir()
	_, stderr, err := execute(t, context.Background(), "start", "--workers", "1", "--quiet",
		"--data-dir", dir, "--nats-listen", "127.0.0.1:0", "--s3-listen", freeAddr(t),
		"--set", "dataset=synthetic", "--set", "hidden=[16]", "--set", "batch_size=256", "--set", "epochs=1")
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderr)
	}

	tr := j.WaitTrace(t, "worker", time.Minute, func(tr jaegertest.Trace) error {
		for _, s := range tr.Spans {
			if s.OperationName != "task" || tr.Service(s) != "worker" {
				continue
			}
			parent, ok := tr.Span(s.Parent())
			if !ok {
				return fmt.Errorf("task span %s has no parent in trace %s", s.SpanID, tr.TraceID)
			}
			if parent.OperationName != "step" || tr.Service(parent) != "coordinator" {
				return fmt.Errorf("task's parent is %s/%s, want coordinator/step", tr.Service(parent), parent.OperationName)
			}
			for _, want := range []string{"task.compute", "task.fetch_weights", "task.publish"} {
				if !hasChild(tr, s.SpanID, want) {
					return fmt.Errorf("task span lacks a %s child", want)
				}
			}
			if !hasChild(tr, parent.SpanID, "step.publish") {
				return fmt.Errorf("step span lacks step.publish")
			}
			return nil
		}
		return fmt.Errorf("no worker task span in trace %s", tr.TraceID)
	})
	t.Logf("trace of one step:\n%s", tr.Tree())
}

func hasChild(tr jaegertest.Trace, parent, op string) bool {
	for _, s := range tr.Spans {
		if s.Parent() == parent && s.OperationName == op {
			return true
		}
	}
	return false
}
