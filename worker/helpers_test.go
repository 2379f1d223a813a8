package worker

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// peerGrad is another worker's gradient of shard 1 of run's step, computed
// on the weights whose check is weights: size distinct values.
func peerGrad(run string, step uint64, weights [8]byte, size int) protocol.Grad {
	g := protocol.Grad{Run: run, Step: step, Shard: 1, Worker: "peer", Weights: weights, Stats: []protocol.ShardStats{{Count: 4}}, Grad: make([]float32, size)}
	for i := range g.Grad {
		g.Grad[i] = float32(i) / 100
	}
	return g
}

// inParts encodes g for a server whose max payload is maxPayload: the
// messages of its parts, at least least of them.
func inParts(t *testing.T, g *protocol.Grad, maxPayload, least int) [][]byte {
	t.Helper()
	data, msgs, err := g.AppendParts(nil, maxPayload)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < least {
		t.Fatalf("%d messages, want %d parts at least", len(msgs), least)
	}
	parts := make([][]byte, len(msgs))
	from := 0
	for i, m := range msgs {
		parts[i], from = data[from:m.End], m.End
	}
	return parts
}

// publishAll stores each message on subject, in order.
func publishAll(t *testing.T, js jetstream.JetStream, subject string, msgs [][]byte) {
	t.Helper()
	for _, m := range msgs {
		if _, err := js.Publish(context.Background(), subject, m); err != nil {
			t.Fatal(err)
		}
	}
}

// sameBits fails the test unless got holds want's values bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// connectNoEcho connects to url as a worker does, hearing nothing it
// publishes itself.
func connectNoEcho(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoEcho())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// ackWaitOf is a consumer's ack wait d, as a feed reads it.
func ackWaitOf(d time.Duration) *atomic.Int64 {
	var a atomic.Int64
	a.Store(int64(d))
	return &a
}
