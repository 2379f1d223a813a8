// Package telemetry sets up OpenTelemetry traces and metrics for the
// coordinator and worker, and carries W3C trace context through NATS
// message headers so a worker's task span is a child of the coordinator's
// step span in the same trace.
//
// # Setup
//
// Each binary calls Setup once and Shutdown on exit (Shutdown flushes):
//
//	tp, err := telemetry.Setup(ctx, telemetry.Options{Service: "coordinator", MetricsAddr: ":9464"})
//	if err != nil {
//		return err
//	}
//	defer tp.Shutdown(context.WithoutCancel(ctx))
//	m, err := telemetry.NewMetrics(tp.Meter())
//
// Configuration is the standard OTEL_* environment:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4317   turns tracing on (or ..._TRACES_ENDPOINT)
//	OTEL_EXPORTER_OTLP_PROTOCOL=grpc                 or http/protobuf; port 4317 implies grpc
//	OTEL_TRACES_EXPORTER=otlp|none                   otlp without an endpoint: localhost defaults
//	OTEL_SERVICE_NAME=coordinator-a                  overrides Options.Service
//	OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, ...
//	OTEL_SDK_DISABLED=true                           tracing off
//	JETTRAIN_METRICS_ADDR=:9464                      Prometheus endpoint when Options.MetricsAddr is empty
//
// With none of them set and no MetricsAddr, Setup returns no-op providers:
// no goroutines, no sockets, and a span costs a context allocation.
// Setup never changes the otel globals; pass Tracer, Meter or the providers
// where they are needed.
//
// # Propagation
//
// The sender injects the current span into the message header; the receiver
// extracts it and starts its span from the returned context:
//
//	ctx, span := tp.Tracer().Start(ctx, telemetry.SpanStep,
//		trace.WithAttributes(attribute.Int64(telemetry.AttrStep, step)))
//	msg := nats.NewMsg(subject)
//	telemetry.Inject(ctx, msg.Header) // traceparent, tracestate
//	...
//	ctx = telemetry.Extract(ctx, msg.Header)
//	ctx, task := tp.Tracer().Start(ctx, telemetry.SpanTask)
//
// Span names (SpanStep, SpanTask, ...) and attribute keys (AttrRun,
// AttrStep, AttrShard, AttrWorker, AttrRedelivery, ...) are constants here so
// every process writes the same tree; see the constants for the shape of a
// step's trace.
//
// # Metrics
//
// NewMetrics creates every instrument (jettrain.step.duration,
// jettrain.samples, jettrain.loss, ...) in one place. With MetricsAddr set
// they are served for Prometheus at MetricsURL, named with underscores and a
// unit suffix (jettrain_step_duration_seconds, jettrain_samples_total), next
// to the Go runtime and process collectors.
//
// # Secrets
//
// OTLP headers (OTEL_EXPORTER_OTLP_HEADERS) may hold tokens; nothing here
// prints them, and Provider.String shows only the protocol and the metrics URL.
package telemetry
