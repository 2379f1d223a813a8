// Package jaegertest runs a real Jaeger for tests and reads traces back from
// its query API.
//
// The binary comes from the JETTRAIN_JAEGER environment variable (build it
// with `.ci/jaeger.sh CACHE_DIR`, which prints its path); without it, Start
// skips the test. Jaeger runs in memory on free ports, so tests may run side
// by side:
//
//	j := jaegertest.Start(t)
//	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPGRPCEndpoint())
//	... run the code under test, shut its telemetry.Provider down ...
//	tr := j.WaitTrace(t, "worker", 30*time.Second, func(tr jaegertest.Trace) error { ... })
//	t.Log(tr.Tree())
package jaegertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/internal/syncbuf"
)

// EnvBinary names the environment variable holding the Jaeger binary's path.
const EnvBinary = "JETTRAIN_JAEGER"

// config is Jaeger v2's all-in-one memory setup reduced to what tests need,
// on ports chosen by Start: OTLP gRPC and HTTP receivers, the memory store
// and the query API. Its own telemetry is off so nothing binds a fixed port.
const config = `
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

// Jaeger is a running Jaeger subprocess.
type Jaeger struct {
	// Query, OTLPGRPC and OTLPHTTP are host:port addresses.
	Query, OTLPGRPC, OTLPHTTP string
	out                       *syncbuf.Buffer
}

// OTLPGRPCEndpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT with the
// grpc protocol.
func (j *Jaeger) OTLPGRPCEndpoint() string { return "http://" + j.OTLPGRPC }

// OTLPHTTPEndpoint is the value for OTEL_EXPORTER_OTLP_ENDPOINT with the
// http/protobuf protocol.
func (j *Jaeger) OTLPHTTPEndpoint() string { return "http://" + j.OTLPHTTP }

// Output is what Jaeger printed so far.
func (j *Jaeger) Output() string { return j.out.String() }

func freePorts(t testing.TB, n int) []int {
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

// poll calls f until it returns nil or timeout passes, then fails t.
func poll(t testing.TB, timeout time.Duration, f func() error) {
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
		time.Sleep(100 * time.Millisecond)
	}
}

// Start runs Jaeger from $JETTRAIN_JAEGER on free ports and waits until it
// accepts OTLP and answers queries; it skips t when the variable is unset.
// Jaeger is killed when t ends, and its output logged if t failed.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Skip(EnvBinary + " is unset; build Jaeger with `.ci/jaeger.sh CACHE_DIR` and set " + EnvBinary + " to the binary it prints")
	}
	p := freePorts(t, 4)
	cfg := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, p[0], p[1], p[2], p[3]), 0o644); err != nil {
		t.Fatal(err)
	}
	j := &Jaeger{
		Query:    fmt.Sprintf("127.0.0.1:%d", p[0]),
		OTLPGRPC: fmt.Sprintf("127.0.0.1:%d", p[2]),
		OTLPHTTP: fmt.Sprintf("127.0.0.1:%d", p[3]),
		out:      &syncbuf.Buffer{},
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = j.out, j.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("jaeger output:\n%s", j.out.String())
		}
	})
	poll(t, 60*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("jaeger exited: %v\n%s", err, j.out.String())
		default:
		}
		for _, a := range []string{j.OTLPGRPC, j.OTLPHTTP} {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				return err
			}
			c.Close()
		}
		resp, err := http.Get("http://" + j.Query + "/api/services")
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

// Trace is one trace as Jaeger's query API (/api/traces) returns it.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
}

// Process is the emitting process of spans.
type Process struct {
	ServiceName string `json:"serviceName"`
}

// Span is one span of a Trace.
type Span struct {
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

// Parent is the span id of s's CHILD_OF reference, "" for a root.
func (s Span) Parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

// Tag is the value of attribute key on s, nil when absent.
func (s Span) Tag(key string) any {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value
		}
	}
	return nil
}

// Service is the service.name of the process that emitted s.
func (tr Trace) Service(s Span) string { return tr.Processes[s.ProcessID].ServiceName }

// Span returns the span with the given id.
func (tr Trace) Span(id string) (Span, bool) {
	for _, s := range tr.Spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return Span{}, false
}

// Tree renders the trace as an indented span tree, "name [service]".
func (tr Trace) Tree() string {
	children := map[string][]Span{}
	ids := map[string]bool{}
	for _, s := range tr.Spans {
		ids[s.SpanID] = true
	}
	var roots []Span
	for _, s := range tr.Spans {
		if p := s.Parent(); p != "" && ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		fmt.Fprintf(&b, "%s%s [%s]\n", strings.Repeat("  ", depth), s.OperationName, tr.Service(s))
		for _, c := range children[s.SpanID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// Traces queries /api/traces for a service's recent traces.
func (j *Jaeger) Traces(ctx context.Context, service string) ([]Trace, error) {
	q := url.Values{"service": {service}, "lookback": {"1h"}, "limit": {"100"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+j.Query+"/api/traces?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger %s: %.200s", resp.Status, body)
	}
	var r struct {
		Data []Trace `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("jaeger traces: %v: %.200s", err, body)
	}
	return r.Data, nil
}

// WaitTrace polls service's traces until ok accepts one, and returns it;
// t fails after timeout with ok's last complaint.
func (j *Jaeger) WaitTrace(t testing.TB, service string, timeout time.Duration, ok func(Trace) error) Trace {
	t.Helper()
	var found Trace
	poll(t, timeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		traces, err := j.Traces(ctx, service)
		if err != nil {
			return err
		}
		if len(traces) == 0 {
			return fmt.Errorf("no traces for service %q yet", service)
		}
		var last error
		for _, tr := range traces {
			if last = ok(tr); last == nil {
				found = tr
				return nil
			}
		}
		return last
	})
	return found
}
