package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// jaegerConfig is Jaeger v2's all-in-one memory setup reduced to what the
// test needs, on ports chosen by the test: OTLP gRPC and HTTP receivers, the
// memory store and the query API. Internal telemetry is off so nothing else
// binds a fixed port.
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
`

// jaeger is a running Jaeger subprocess.
type jaeger struct {
	query, otlpGRPC, otlpHTTP string // host:port
}

// syncBuffer collects a subprocess's output for failure reports.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func checkFor(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// startJaeger runs the binary named by JETTRAIN_JAEGER on free ports.
func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	bin := os.Getenv("JETTRAIN_JAEGER")
	if bin == "" {
		t.Skip("JETTRAIN_JAEGER is unset; build Jaeger with `.ci/jaeger.sh CACHE_DIR` and set JETTRAIN_JAEGER to the binary it prints")
	}
	p := freePorts(t, 4)
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, jaegerConfig, p[0], p[1], p[2], p[3]), 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger output:\n%s", out.String())
		}
	})
	j := &jaeger{
		query:    fmt.Sprintf("127.0.0.1:%d", p[0]),
		otlpGRPC: fmt.Sprintf("127.0.0.1:%d", p[2]),
		otlpHTTP: fmt.Sprintf("127.0.0.1:%d", p[3]),
	}
	checkFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("jaeger exited: %v\n%s", err, out.String())
		default:
		}
		for _, a := range []string{j.otlpGRPC, j.otlpHTTP} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		resp, err := http.Get("http://" + j.query + "/api/services")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("query API: %s", resp.Status)
		}
		return nil
	})
	return j
}

// Jaeger's query API (api/traces) in the parts the test reads.
type jaegerTraces struct {
	Data []jaegerTrace `json:"data"`
}

type jaegerTrace struct {
	TraceID   string `json:"traceID"`
	Spans     []jaegerSpan
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

type jaegerSpan struct {
	TraceID       string `json:"traceID"`
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

func (s jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s jaegerSpan) tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

// tree renders a trace as an indented span tree, "name [service]".
func (tr jaegerTrace) tree() string {
	children := map[string][]jaegerSpan{}
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	var roots []jaegerSpan
	for _, s := range tr.Spans {
		if p := s.parent(); p != "" && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s jaegerSpan, depth int)
	walk = func(s jaegerSpan, depth int) {
		fmt.Fprintf(&b, "%s%s [%s]\n", strings.Repeat("  ", depth), s.OperationName, tr.Processes[s.ProcessID].ServiceName)
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// TestJaegerEndToEnd sends a step span's context from a "coordinator" to a
// "worker" through a real NATS message, exports both processes' spans to a
// real Jaeger (one over OTLP gRPC, one over OTLP HTTP) and reads them back as
// one trace with the worker's task span under the coordinator's step span.
func TestJaegerEndToEnd(t *testing.T) {
	j := startJaeger(t)
	clearEnv(t)
	ctx := context.Background()

	// The two processes differ only in their environment at Setup time.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.otlpGRPC)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolGRPC)
	coord, err := Setup(ctx, Options{Service: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.otlpHTTP)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", ProtocolHTTP)
	work, err := Setup(ctx, Options{Service: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if coord.Protocol() != ProtocolGRPC || work.Protocol() != ProtocolHTTP {
		t.Fatalf("protocols %q %q", coord.Protocol(), work.Protocol())
	}

	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
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
	// Coordinator: epoch > step > step.publish, context injected into the task.
	ectx, epoch := coord.Tracer().Start(ctx, SpanEpoch, trace.WithAttributes(
		attribute.String(AttrRun, run), attribute.Int(AttrEpoch, 1)))
	sctx, step := coord.Tracer().Start(ectx, SpanStep, trace.WithAttributes(
		attribute.String(AttrRun, run), attribute.Int(AttrEpoch, 1), attribute.Int64(AttrStep, 42)))
	pctx, publish := coord.Tracer().Start(sctx, SpanStepPublish)
	msg := nats.NewMsg("jettrain.test.tasks")
	msg.Data = []byte("task 42/0")
	Inject(sctx, msg.Header)
	if err := coordNC.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	_ = pctx
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

	var found jaegerTrace
	checkFor(t, 30*time.Second, 200*time.Millisecond, func() error {
		found = jaegerTrace{}
		for _, svc := range []string{"worker", "coordinator"} {
			resp, err := http.Get("http://" + j.query + "/api/traces?service=" + svc + "&lookback=1h&limit=20")
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r jaegerTraces
			if err := json.Unmarshal(body, &r); err != nil {
				return fmt.Errorf("%s: %v: %.200s", svc, err, body)
			}
			var hit *jaegerTrace
			for i := range r.Data {
				if r.Data[i].TraceID == traceID {
					hit = &r.Data[i]
				}
			}
			if hit == nil {
				return fmt.Errorf("trace %s not yet listed for service %s", traceID, svc)
			}
			found = *hit
		}
		if len(found.Spans) < 6 {
			return fmt.Errorf("trace has %d of 6 spans", len(found.Spans))
		}
		return nil
	})

	spans := map[string]jaegerSpan{}
	for _, s := range found.Spans {
		spans[s.SpanID] = s
	}
	service := func(s jaegerSpan) string { return found.Processes[s.ProcessID].ServiceName }
	st, ok := spans[stepID]
	if !ok || st.OperationName != SpanStep || service(st) != "coordinator" {
		t.Fatalf("step span missing or wrong: %+v", st)
	}
	tk, ok := spans[taskID]
	if !ok || tk.OperationName != SpanTask || service(tk) != "worker" {
		t.Fatalf("task span missing or wrong: %+v", tk)
	}
	if tk.parent() != stepID {
		t.Fatalf("worker task's parent is %q, want the coordinator step %q\n%s", tk.parent(), stepID, found.tree())
	}
	if v := tk.tag(AttrWorker); v != "w1" {
		t.Fatalf("task %s = %v", AttrWorker, v)
	}
	for _, s := range found.Spans {
		if s.OperationName == SpanTaskCompute && s.parent() != taskID {
			t.Fatalf("compute span's parent is %q, want the task", s.parent())
		}
	}
	t.Logf("trace %s in Jaeger:\n%s", traceID, found.tree())
}
