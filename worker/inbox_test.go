package worker

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/internal/syncbuf"
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

// A replica waiting at the run's live edge need not look in the grads
// stream at once: once the inbox's subscription has received a gradient of
// a step, every gradient of a later step is published while it listens.
// Not before anything arrived, not for a step whose gradients may predate
// the subscription (a replica catching up), and not after a reconnect,
// which may have lost some, until a gradient arrives again.
func TestInboxCoversOnlyStepsItMustReceive(t *testing.T) {
	b := startRestartable(t)
	const run, size = "ab12", 6
	in := newInbox(run, 2, size)
	if err := in.subscribe(b.nc); err != nil {
		t.Fatal(err)
	}
	defer in.close()
	arrive := func(step uint64) {
		t.Helper()
		g := protocol.Grad{Run: run, Step: step, Shard: 0, Worker: "peer", Stats: []protocol.ShardStats{{Count: 4}}, Grad: make([]float32, size)}
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.nc.Publish(protocol.GradSubject(run, step, 0), data); err != nil {
			t.Fatal(err)
		}
		poll(t, &syncbuf.Buffer{}, fmt.Sprintf("the gradient of step %d", step), func() bool {
			in.mu.Lock()
			defer in.mu.Unlock()
			return in.live && in.newest >= step
		})
	}
	if in.covers(4) {
		t.Fatal("covers step 4 before the subscription received anything")
	}
	arrive(3)
	for _, c := range []struct {
		step uint64
		want bool
	}{{2, false}, {3, false}, {4, true}, {5, true}} {
		if got := in.covers(c.step); got != c.want {
			t.Errorf("after a gradient of step 3: covers(%d) = %v, want %v", c.step, got, c.want)
		}
	}
	arrive(9)
	if in.covers(4) {
		t.Error("covers step 4, behind a gradient of step 9 that arrived: a replica there is catching up")
	}
	if !in.covers(8) || !in.covers(10) {
		t.Error("does not cover steps 8 and 10, at the live edge")
	}
	b.restart(t)
	if in.covers(10) {
		t.Fatal("covers step 10 after a reconnect that may have lost its gradients")
	}
	arrive(10)
	if !in.covers(11) {
		t.Fatal("does not cover step 11 after a gradient of step 10 arrived on the new connection")
	}
}

// A worker is alone while its inbox hears no other worker's gradients
// around its step: before any arrives, and once the last one heard is more
// than aloneSteps behind. Over a connection made with nats.NoEcho its own
// gradients do not count; without a subscription it cannot tell.
func TestInboxIsAloneUntilItHearsAnotherWorker(t *testing.T) {
	const run, size = "ab12", 6
	if newInbox(run, 2, size).alone(0) {
		t.Fatal("alone without a subscription")
	}
	peer, _ := startJetStream(t)
	own := connectNoEcho(t, peer.ConnectedUrl())
	in := newInbox(run, 2, size)
	if err := in.subscribe(own); err != nil {
		t.Fatal(err)
	}
	defer in.close()
	if !in.alone(0) {
		t.Fatal("not alone before any gradient was heard")
	}
	send := func(nc *nats.Conn, step uint64) {
		t.Helper()
		g := protocol.Grad{Run: run, Step: step, Shard: 0, Worker: "w", Stats: []protocol.ShardStats{{Count: 4}}, Grad: make([]float32, size)}
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(protocol.GradSubject(run, step, 0), data); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil { // the server has it before the next publish
			t.Fatal(err)
		}
	}
	// Its own gradient of step 10 first, then a peer's of step 3: the
	// subscription gets them in that order, if it gets its own at all.
	send(own, 10)
	send(peer, 3)
	poll(t, &syncbuf.Buffer{}, "the peer's gradient of step 3", func() bool { return !in.alone(3) })
	for _, c := range []struct {
		step uint64
		want bool
	}{{2, false}, {4, false}, {5, false}, {6, true}, {12, true}} {
		if got := in.alone(c.step); got != c.want {
			t.Errorf("after a peer's gradient of step 3 (and its own of step 10): alone(%d) = %v, want %v", c.step, got, c.want)
		}
	}
}

// A gradient too large for one message arrives in parts: the inbox puts it
// together, in whatever order they come, and keeps it like a whole one.
func TestInboxPutsPartsTogether(t *testing.T) {
	const run, size = "ab12", 300
	b := newInbox(run, 2, size)
	g := peerGrad(run, 0, [8]byte{}, size)
	parts := inParts(t, &g, 400, 3)
	for i := len(parts) - 1; i >= 0; i-- {
		if got, _ := b.take(0, 1); got != nil {
			t.Fatalf("a gradient kept before its part %d came", i)
		}
		b.receive(&nats.Msg{Subject: protocol.GradSubject(run, 0, 1), Data: parts[i]})
	}
	got, _ := b.take(0, 1)
	if got == nil {
		t.Fatal("the parts were not put together")
	}
	sameBits(t, "the gradient put together", got.Grad, g.Grad)
}

// A peer's gradient offered in memory is decoded when the replica takes
// it, and its bytes are let go exactly once whatever becomes of it: read,
// refused for a shard the inbox has, cleared by a move to a later step,
// or offered to a closed inbox.
func TestAnOfferedGradientIsLetGoOnce(t *testing.T) {
	const run, size = "ab12", 6
	b := newInbox(run, 2, size)
	released := map[string]int{}
	offer := func(name string, step uint64, g protocol.Grad) {
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b.offer(step, int(g.Shard), data, func() { released[name]++ })
	}
	g := peerGrad(run, 0, [8]byte{1}, size) // shard 1
	offer("read", 0, g)
	if released["read"] != 0 {
		t.Fatal("an offer was let go before the replica read it")
	}
	got, _ := b.take(0, 1)
	if got == nil || got.Weights != g.Weights || fmt.Sprint(got.Grad) != fmt.Sprint(g.Grad) {
		t.Fatalf("took %+v, offered %+v", got, g)
	}
	offer("had", 0, g)
	next := peerGrad(run, 1, [8]byte{2}, size)
	offer("cleared", 1, next)
	b.moveTo(3)
	b.close()
	offer("closed", 3, peerGrad(run, 3, [8]byte{3}, size))
	for _, name := range []string{"read", "had", "cleared", "closed"} {
		if released[name] != 1 {
			t.Errorf("the offer %q was let go %d times, want once", name, released[name])
		}
	}
}

// A peer's offers are heard as its gradients arriving by subscription
// are: the inbox is not alone, and expects the next steps' gradients to
// reach it without looking in the stream. (Peers that share a connection
// made with nats.NoEcho hear each other only so.)
func TestAnOfferIsHeard(t *testing.T) {
	const run, size = "ab12", 6
	_, js := startJetStream(t)
	in := newInbox(run, 2, size)
	if err := in.subscribe(js.Conn()); err != nil {
		t.Fatal(err)
	}
	defer in.close()
	if !in.alone(3) || in.covers(4) {
		t.Fatal("heard something before any gradient came")
	}
	g := peerGrad(run, 3, [8]byte{1}, size)
	data, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	in.offer(3, 1, data, func() {})
	if in.alone(3) {
		t.Error("alone after a peer offered a gradient of step 3")
	}
	if !in.covers(4) {
		t.Error("does not expect the gradients of step 4 after a peer offered one of step 3")
	}
}

// A peer's gradient in parts is decoded as its parts are offered, and the
// inbox keeps none of their bytes.
func TestOfferedPartsArePutTogether(t *testing.T) {
	const run, size = "ab12", 300
	b := newInbox(run, 2, size)
	g := peerGrad(run, 0, [8]byte{}, size)
	parts := inParts(t, &g, 400, 3)
	b.offerParts(0, 1, parts)
	for _, p := range parts {
		clear(p)
	}
	got, _ := b.take(0, 1)
	if got == nil {
		t.Fatal("the offered parts were not put together")
	}
	sameBits(t, "the gradient put together", got.Grad, g.Grad)
}
