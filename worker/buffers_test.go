package worker

import (
	"testing"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// A shard's gradient, held in pieces, goes out in one buffer of the pool:
// the message is the gradient's encoding, values in piece order, and the
// buffer it lies in goes back to the pool once released. One too large
// for a message is left to go out in parts, its values in g.Grad.
func TestAShardsGradientIsEncodedFromItsPieces(t *testing.T) {
	p := newGradBuffers()
	parts := model.Parts{{1, 2, 3}, {-4.5}, {5, 6}}
	g := &protocol.Grad{Run: "ab12", Step: 7, Shard: 2, Worker: "w-1", Weights: [8]byte{9}, Stats: []protocol.ShardStats{{LossSum: 1, Count: 32}}}
	buf, msgs, ok := p.encodeParts(g, parts, 6, 1<<20)
	if !ok {
		t.Skip("this machine does not store float32s as their little-endian bytes")
	}
	want, _ := (&protocol.Grad{Run: g.Run, Step: g.Step, Shard: g.Shard, Worker: g.Worker, Weights: g.Weights, Stats: g.Stats, Grad: []float32{1, 2, 3, -4.5, 5, 6}}).MarshalBinary()
	if string(buf.data) != string(want) || len(msgs) != 1 || msgs[0].End != len(want) {
		t.Fatalf("encoded %x in %+v, want %x in one message", buf.data, msgs, want)
	}
	if &buf.data[len(buf.data)-1] != &buf.whole[len(buf.whole)-1] {
		t.Fatal("the message is not at the end of the pool's buffer")
	}
	buf.release()
	if got := p.get(6); cap(got) != cap(buf.whole) {
		t.Fatalf("the pool gave back a buffer of %d bytes, want the released one of %d", cap(got), cap(buf.whole))
	}

	g.Grad = nil
	if _, _, ok := p.encodeParts(g, parts, 6, 64); ok {
		t.Fatal("encoded a gradient larger than the max payload in one message")
	}
	if len(g.Grad) != 6 || g.Grad[3] != -4.5 {
		t.Fatalf("left %v for the parts, want the six values", g.Grad)
	}
}
