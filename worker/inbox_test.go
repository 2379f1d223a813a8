package worker

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// A gradient that arrives by subscription is kept only if a replica can use
// it: one with more or fewer values than the network has weights (which
// would overrun the sum, or fold in part of one) is ignored, like one whose
// subject and contents disagree.
func TestInboxKeepsOnlyGradientsThatFit(t *testing.T) {
	const run, size = "ab12", 6
	b := newInbox(run, 2, size)
	arrive := func(subjectShard int, g protocol.Grad) {
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b.receive(&nats.Msg{Subject: protocol.GradSubject(run, 0, subjectShard), Data: data})
	}
	grad := func(shard uint16, n int) protocol.Grad {
		return protocol.Grad{Run: run, Step: 0, Shard: shard, Worker: "w", Stats: []protocol.ShardStats{{Count: 4}}, Grad: make([]float32, n)}
	}
	arrive(0, grad(0, size+1))
	arrive(0, grad(0, size-1))
	arrive(1, grad(0, size)) // shard 0's gradient on shard 1's subject
	for shard := range 2 {
		if g, _ := b.take(0, shard); g != nil {
			t.Fatalf("shard %d: kept a gradient that does not fit: %d values, shard %d", shard, len(g.Grad), g.Shard)
		}
	}
	arrive(1, grad(1, size))
	if g, _ := b.take(0, 1); g == nil || len(g.Grad) != size {
		t.Fatalf("a gradient that fits was not kept: %+v", g)
	}
}
