package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// otelEnv lists every variable Setup reads, so tests start from a clean slate.
var otelEnv = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", EnvMetricsAddr,
}

func clearEnv(t *testing.T) {
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

func TestSetupNoopWhenUnconfigured(t *testing.T) {
	clearEnv(t)
	before := runtime.NumGoroutine()
	p, err := Setup(context.Background(), Options{Service: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if p.TracingEnabled() || p.MetricsURL() != "" || p.Protocol() != "" {
		t.Fatalf("expected no-op, got %v", p)
	}
	if p.Service() != "worker" {
		t.Fatalf("service %q", p.Service())
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("no-op Setup started %d goroutines", n-before)
	}
	m, err := NewMetrics(p.Meter())
	if err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	h := nats.Header{}
	allocs := testing.AllocsPerRun(1000, func() {
		c, span := p.Tracer().Start(ctx, SpanStep)
		Inject(c, h)
		c = Extract(c, h)
		_, child := p.Tracer().Start(c, SpanTask)
		m.StepDuration.Record(c, 0.003)
		m.Samples.Add(c, 64)
		child.End()
		span.End()
	})
	if allocs > 2 {
		t.Fatalf("no-op step costs %.0f allocations, want <= 2", allocs)
	}
	if len(h) != 0 {
		t.Fatalf("no-op tracer wrote headers: %v", h)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal("second Shutdown:", err)
	}
}

func TestNilAndNoopProvider(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	for _, p := range []*Provider{nil, Noop()} {
		_, span := p.Tracer().Start(context.Background(), SpanStep)
		span.End()
		if span.SpanContext().IsValid() || p.TracingEnabled() || p.MetricsURL() != "" {
			t.Fatalf("%v records", p)
		}
		if _, err := NewMetrics(p.Meter()); err != nil {
			t.Fatal(err)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSetupServiceNameFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_SERVICE_NAME", "coordinator-east")
	p, err := Setup(context.Background(), Options{Service: "coordinator"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.Service() != "coordinator-east" {
		t.Fatalf("service %q", p.Service())
	}
}

func TestTraceProtocol(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
		err  bool
	}{
		{env: nil, want: ""},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317"}, want: ProtocolGRPC},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, want: ProtocolHTTP},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "jaeger:4317"}, want: ProtocolGRPC},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, want: ProtocolHTTP},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:9", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, want: ProtocolGRPC},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: ProtocolHTTP},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4317"}, want: ""},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: true},
	} {
		got, err := traceProtocol(func(k string) string { return c.env[k] })
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%v: got %q, %v; want %q (error %v)", c.env, got, err, c.want, c.err)
		}
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Errorf("%v: error %v is not ErrConfig", c.env, err)
		}
	}
}

func TestSetupRejectsBadConfig(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "jaeger")
	if _, err := Setup(context.Background(), Options{}); !errors.Is(err, ErrConfig) {
		t.Fatalf("want ErrConfig, got %v", err)
	}
	clearEnv(t)
	if _, err := Setup(context.Background(), Options{MetricsAddr: "256.0.0.1:bad"}); !errors.Is(err, ErrMetricsListen) {
		t.Fatalf("want ErrMetricsListen, got %v", err)
	}
}

func TestMetricsAddrFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvMetricsAddr, "127.0.0.1:0")
	p, err := Setup(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if p.MetricsURL() == "" {
		t.Fatal("JETTRAIN_METRICS_ADDR ignored")
	}
	resp, err := http.Get(strings.TrimSuffix(p.MetricsURL(), "/metrics") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
}

func TestSDKDisabled(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	p, err := Setup(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.TracingEnabled() {
		t.Fatal("tracing on with OTEL_SDK_DISABLED=true")
	}
}

func TestPrometheusEndpoint(t *testing.T) {
	clearEnv(t)
	ctx := context.Background()
	p, err := Setup(ctx, Options{Service: "coordinator", MetricsAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	if !strings.HasPrefix(p.MetricsURL(), "http://127.0.0.1:") || strings.HasSuffix(p.MetricsURL(), ":0/metrics") {
		t.Fatalf("MetricsURL %q", p.MetricsURL())
	}
	m, err := NewMetrics(p.Meter())
	if err != nil {
		t.Fatal(err)
	}
	run := metric.WithAttributes(attribute.String(AttrRun, "abc123"))
	m.StepDuration.Record(ctx, 0.004, run)
	m.Samples.Add(ctx, 256, run)
	m.Loss.Record(ctx, 0.4321, metric.WithAttributes(attribute.String(AttrRun, "abc123"), attribute.String(AttrSplit, "valid")))
	m.Accuracy.Record(ctx, 0.88, metric.WithAttributes(attribute.String(AttrRun, "abc123"), attribute.String(AttrSplit, "valid")))
	m.TasksRedelivered.Add(ctx, 2, run)
	m.GradientBytes.Add(ctx, 407040, run)
	m.CheckpointDuration.Record(ctx, 0.05, run)
	m.WorkersAlive.Record(ctx, 3, run)
	m.SamplesPerSecond.Record(ctx, 19876.5, run)
	m.WorkerIdle.Add(ctx, 0.25, metric.WithAttributes(attribute.String(AttrWorker, "w1")))

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(p.MetricsURL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	text := string(body)
	for _, want := range []string{
		`jettrain_step_duration_seconds_bucket{jettrain_run="abc123"`,
		`jettrain_step_duration_seconds_count{jettrain_run="abc123"`,
		`jettrain_samples_total{jettrain_run="abc123"`,
		`jettrain_loss_ratio{jettrain_run="abc123",jettrain_split="valid"`,
		`jettrain_accuracy_ratio{jettrain_run="abc123",jettrain_split="valid"`,
		`jettrain_tasks_redelivered_total{jettrain_run="abc123"`,
		`jettrain_gradient_bytes_total{jettrain_run="abc123"`,
		`jettrain_checkpoint_duration_seconds_bucket`,
		`jettrain_workers_alive{jettrain_run="abc123"`,
		`jettrain_samples_rate`,
		`jettrain_worker_idle_seconds_total{jettrain_worker="w1"`,
		`service_name="coordinator"`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grep(text, "jettrain"))
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(p.MetricsURL()); err == nil {
		t.Fatal("metrics endpoint still serving after Shutdown")
	}
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPropagationHeaders checks the W3C header spelling and that a foreign
// capitalization is read too.
func TestPropagationHeaders(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	m := nats.NewMsg("x")
	m.Header = nil
	InjectMsg(ctx, m)
	if got := m.Header["traceparent"]; len(got) != 1 || got[0] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Fatalf("traceparent %v (headers %v)", got, m.Header)
	}
	got := trace.SpanContextFromContext(ExtractMsg(context.Background(), m))
	if got.TraceID() != tid || got.SpanID() != sid || !got.IsRemote() {
		t.Fatalf("extracted %v", got)
	}
	h := nats.Header{"Traceparent": m.Header["traceparent"]}
	if got := trace.SpanContextFromContext(Extract(context.Background(), h)); got.TraceID() != tid {
		t.Fatal("capitalized Traceparent not read")
	}
	if Extract(ctx, nil) != ctx {
		t.Fatal("Extract of no headers changed the context")
	}
	Inject(ctx, nil) // must not panic
}
