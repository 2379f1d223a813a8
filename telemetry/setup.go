package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

var (
	// ErrConfig means the OTEL_* environment or the Options ask for
	// something unsupported, such as an unknown exporter or protocol.
	ErrConfig = errors.New("telemetry: invalid configuration")
	// ErrMetricsListen means the Prometheus endpoint could not listen on
	// Options.MetricsAddr.
	ErrMetricsListen = errors.New("telemetry: cannot serve metrics")
)

// EnvMetricsAddr is read by Setup when Options.MetricsAddr is empty, so a
// deployment can turn the Prometheus endpoint on without a flag.
const EnvMetricsAddr = "JETTRAIN_METRICS_ADDR"

// InstrumentationName names the tracer and meter of this module.
const InstrumentationName = "github.com/jettrain/jettrain"

// Protocols accepted in OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Options configure Setup. Everything else comes from the standard OTEL_*
// environment.
type Options struct {
	// Service is the service.name used when OTEL_SERVICE_NAME (or
	// service.name in OTEL_RESOURCE_ATTRIBUTES) does not set one:
	// "coordinator" or "worker".
	Service string
	// MetricsAddr is where to serve Prometheus /metrics, such as ":9464" or
	// "127.0.0.1:0"; empty means JETTRAIN_METRICS_ADDR, and when that is
	// empty too, no metrics endpoint and a no-op meter.
	MetricsAddr string
	// Attributes are added to the resource, e.g. the worker id. The
	// environment wins over them.
	Attributes []attribute.KeyValue
}

// Provider holds the tracer and meter providers of one process. Its zero
// configuration (nothing in the environment, no MetricsAddr) is no-op
// throughout and costs nothing.
type Provider struct {
	service    string
	protocol   string // "" when tracing is off
	tp         trace.TracerProvider
	sdkTP      *sdktrace.TracerProvider
	mp         metric.MeterProvider
	sdkMP      *sdkmetric.MeterProvider
	tracer     trace.Tracer
	meter      metric.Meter
	srv        *http.Server
	metricsURL string
	served     chan struct{}

	once sync.Once
	err  error
}

// Setup builds the providers from the OTEL_* environment and opts.
//
// Traces are exported over OTLP when OTEL_TRACES_EXPORTER is "otlp" or when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set;
// the protocol comes from OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL ("grpc" or "http/protobuf"; when neither is
// set, an endpoint on port 4317 means grpc and anything else http/protobuf).
// OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turn tracing off. The
// exporters read their other settings (headers, timeouts, TLS) and the batch
// processor and sampler read theirs (OTEL_BSP_*, OTEL_TRACES_SAMPLER) from the
// environment too.
//
// Metrics are served for Prometheus at http://MetricsAddr/metrics (and a
// liveness probe at /healthz) when opts.MetricsAddr or JETTRAIN_METRICS_ADDR
// is set. Setup does not touch the otel globals.
//
// Call Shutdown to flush spans before the process exits.
func Setup(ctx context.Context, opts Options) (*Provider, error) {
	p := &Provider{
		tp: tracenoop.NewTracerProvider(),
		mp: metricnoop.NewMeterProvider(),
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = strings.TrimSpace(os.Getenv(EnvMetricsAddr))
	}
	disabled := strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true")
	protocol, err := traceProtocol(os.Getenv)
	if err != nil {
		return nil, err
	}
	if disabled {
		protocol = ""
	}
	if protocol == "" && opts.MetricsAddr == "" {
		p.service = serviceName(opts.Service)
		p.finish()
		return p, nil
	}

	res, err := newResource(ctx, opts)
	if err != nil {
		return nil, err
	}
	p.service = serviceName(opts.Service)
	if v, ok := res.Set().Value("service.name"); ok {
		p.service = v.AsString()
	}

	if protocol != "" {
		var exp sdktrace.SpanExporter
		switch protocol {
		case ProtocolGRPC:
			exp, err = otlptracegrpc.New(ctx)
		case ProtocolHTTP:
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: otlp %s exporter: %v", ErrConfig, protocol, err)
		}
		p.protocol = protocol
		p.sdkTP = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		p.tp = p.sdkTP
	}

	if opts.MetricsAddr != "" {
		if err := p.serveMetrics(opts.MetricsAddr, res); err != nil {
			if p.sdkTP != nil {
				_ = p.sdkTP.Shutdown(ctx)
			}
			return nil, err
		}
	}
	p.finish()
	return p, nil
}

// Noop returns a Provider that records nothing, whatever the environment
// says; for tests and tools. A nil *Provider behaves the same.
func Noop() *Provider {
	p := &Provider{tp: tracenoop.NewTracerProvider(), mp: metricnoop.NewMeterProvider(), service: "jettrain"}
	p.finish()
	return p
}

var noopProvider = Noop()

func (p *Provider) finish() {
	p.tracer = p.tp.Tracer(InstrumentationName)
	p.meter = p.mp.Meter(InstrumentationName)
}

// serviceName is OTEL_SERVICE_NAME, else the given name, else "jettrain".
func serviceName(name string) string {
	if s := strings.TrimSpace(os.Getenv("OTEL_SERVICE_NAME")); s != "" {
		return s
	}
	if name != "" {
		return name
	}
	return "jettrain"
}

// newResource describes this process. Only schemaless attributes and the
// SDK's own detectors are combined: merging resources with different schema
// URLs fails.
func newResource(ctx context.Context, opts Options) (*resource.Resource, error) {
	name := opts.Service
	if name == "" {
		name = "jettrain"
	}
	attrs := append([]attribute.KeyValue{attribute.String("service.name", name)}, opts.Attributes...)
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: last, so they win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("%w: resource: %v", ErrConfig, err)
	}
	return res, nil
}

// traceProtocol decides from the environment whether to export traces and
// how; "" means no tracing.
func traceProtocol(getenv func(string) string) (string, error) {
	env := func(k string) string { return strings.TrimSpace(getenv(k)) }
	endpoint := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	switch exp := strings.ToLower(env("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return "", nil
	case "":
		if endpoint == "" {
			return "", nil
		}
	case "otlp":
	default:
		return "", fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q is not supported (use otlp or none)", ErrConfig, exp)
	}
	proto := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case ProtocolGRPC, ProtocolHTTP:
		return proto, nil
	case "":
		if endpointPort(endpoint) == "4317" {
			return ProtocolGRPC, nil
		}
		return ProtocolHTTP, nil
	default:
		return "", fmt.Errorf("%w: OTLP protocol %q is not supported (use grpc or http/protobuf)", ErrConfig, proto)
	}
}

func endpointPort(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return u.Port()
	}
	if _, port, err := net.SplitHostPort(endpoint); err == nil {
		return port
	}
	return ""
}

// serveMetrics starts the meter provider with a Prometheus exporter on its
// own registry (so several Providers can live in one process) and serves it.
func (p *Provider) serveMetrics(addr string, res *resource.Resource) error {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("%w: prometheus exporter: %v", ErrConfig, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w on %s: %v", ErrMetricsListen, addr, err)
	}
	p.sdkMP = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
	p.mp = p.sdkMP

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.served = make(chan struct{})
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()

	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	p.metricsURL = "http://" + net.JoinHostPort(host, port) + "/metrics"
	return nil
}

// Tracer returns the tracer; a no-op tracer when tracing is off. Spans from
// it still carry an incoming trace context through Inject.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return noopProvider.tracer
	}
	return p.tracer
}

// Meter returns the meter; a no-op meter when there is no metrics endpoint.
func (p *Provider) Meter() metric.Meter {
	if p == nil {
		return noopProvider.meter
	}
	return p.meter
}

// TracerProvider and MeterProvider expose the providers for libraries that
// take one.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil {
		return noopProvider.tp
	}
	return p.tp
}

// MeterProvider returns the meter provider.
func (p *Provider) MeterProvider() metric.MeterProvider {
	if p == nil {
		return noopProvider.mp
	}
	return p.mp
}

// Service is the resolved service.name.
func (p *Provider) Service() string {
	if p == nil {
		return noopProvider.service
	}
	return p.service
}

// TracingEnabled reports whether spans are exported, and Protocol how
// ("grpc" or "http/protobuf").
func (p *Provider) TracingEnabled() bool { return p != nil && p.sdkTP != nil }

// Protocol is the OTLP protocol in use, "" when tracing is off.
func (p *Provider) Protocol() string {
	if p == nil {
		return ""
	}
	return p.protocol
}

// MetricsURL is the URL Prometheus scrapes, with the port actually bound
// when MetricsAddr had port 0; "" without a metrics endpoint.
func (p *Provider) MetricsURL() string {
	if p == nil {
		return ""
	}
	return p.metricsURL
}

// ForceFlush exports all finished spans now.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p == nil || p.sdkTP == nil {
		return nil
	}
	return p.sdkTP.ForceFlush(ctx)
}

// Shutdown flushes and stops the exporters and the metrics endpoint. It is
// safe to call more than once; later calls return the first result. An
// unreachable collector makes it wait up to ctx's deadline (or the OTLP
// exporter timeout, 10 s by default), so give it a bounded context.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.once.Do(func() {
		var errs []error
		if p.sdkTP != nil {
			if err := p.sdkTP.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: flush traces: %w", err))
			}
		}
		if p.srv != nil {
			if err := p.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: stop metrics endpoint: %w", err))
			}
			<-p.served
		}
		if p.sdkMP != nil {
			if err := p.sdkMP.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: stop metrics: %w", err))
			}
		}
		p.err = errors.Join(errs...)
	})
	return p.err
}

// String describes the setup without secrets (OTLP headers are not shown).
func (p *Provider) String() string {
	if p == nil {
		return "telemetry off"
	}
	s := "telemetry " + strconv.Quote(p.service) + ": traces "
	if p.protocol == "" {
		s += "off"
	} else {
		s += "otlp " + p.protocol
	}
	if p.metricsURL != "" {
		s += ", metrics " + p.metricsURL
	}
	return s
}
