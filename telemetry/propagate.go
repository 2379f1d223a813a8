package telemetry

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// propagator writes and reads W3C traceparent/tracestate and baggage. It is
// fixed rather than taken from the otel global so propagation works the same
// whether or not anything set the global.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Inject writes the span context of ctx into h as W3C "traceparent" and
// "tracestate" headers (and "baggage" if any). It writes nothing when ctx
// carries no valid span, as with a no-op tracer and no incoming trace. h must
// be non-nil; see InjectMsg for a message whose Header may be nil.
func Inject(ctx context.Context, h nats.Header) {
	if h == nil {
		return
	}
	propagator.Inject(ctx, headerCarrier(h))
}

// Extract returns ctx with the remote span context found in h, so a span
// started from the result is a child of the sender's span. Without trace
// headers it returns ctx unchanged.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, headerCarrier(h))
}

// InjectMsg is Inject on m.Header, creating the header when needed.
func InjectMsg(ctx context.Context, m *nats.Msg) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	Inject(ctx, m.Header)
}

// ExtractMsg is Extract on m.Header.
func ExtractMsg(ctx context.Context, m *nats.Msg) context.Context {
	return Extract(ctx, m.Header)
}

// headerCarrier adapts nats.Header, whose keys are case-sensitive, to the
// propagation.TextMapCarrier. Keys are written exactly as the W3C spec
// spells them (lower case) and read case-insensitively.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
