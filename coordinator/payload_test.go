package coordinator

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// A model whose gradient does not fit the server's max payload trains: its
// gradients go in parts. Only a max payload too small for a part of a
// sensible size, or a network over the decoders' limit, is refused at
// start with a line that says so.
func TestCheckPayload(t *testing.T) {
	const mlp = 784*256 + 256 + 256*10 + 10 // the default model
	for _, max := range []int64{protocol.MaxPayload, 1 << 20, 64 << 10} {
		if err := checkPayload(max, 4, mlp, 128); err != nil {
			t.Fatalf("default model refused with a max payload of %d: %v", max, err)
		}
	}
	if err := checkPayload(4<<10, 4, mlp, 128); err == nil || !strings.Contains(err.Error(), "max payload of 4096 bytes is too small") {
		t.Fatalf("max payload of 4 KiB: %v", err)
	}
	if err := checkPayload(protocol.MaxPayload, 4, protocol.MaxParameters+1, 128); err == nil || !strings.Contains(err.Error(), "parameters is over") {
		t.Fatalf("a network over the limit: %v", err)
	}
	// A shard's task carries 4 bytes a sample: 300,000 of them do not fit
	// 1 MiB, and over protocol.MaxIndices no worker would decode them.
	if err := checkPayload(1<<20, 1, mlp, 300_000); err == nil || !strings.Contains(err.Error(), "too small for a task of 300000 samples") {
		t.Fatalf("a task over the max payload: %v", err)
	}
	if err := checkPayload(1<<20, 4, mlp, 300_000); err != nil {
		t.Fatalf("the same batch in 4 shards: %v", err)
	}
	if err := checkPayload(1<<30, 1, mlp, protocol.MaxIndices+1); err == nil || !strings.Contains(err.Error(), "raise shards") {
		t.Fatalf("a shard over the indices a task takes: %v", err)
	}
}

// TestGradientsLargerThanMaxPayload trains on a server whose max payload
// holds a quarter of a gradient: every gradient goes in parts, which each
// of two workers puts together from the other's (it steps its replica with
// them) and the coordinator from the stream, also when it stops after a
// checkpoint and resumes from it; the weights are the in-process loop's,
// bit for bit.
func TestGradientsLargerThanMaxPayload(t *testing.T) {
	for _, handOff := range []bool{false, true} {
		t.Run(fmt.Sprintf("handoff=%v", handOff), func(t *testing.T) { testGradientsInParts(t, handOff) })
	}
}

// testGradientsInParts is TestGradientsLargerThanMaxPayload, with the
// workers handing their parts to the coordinator in memory or not.
func testGradientsInParts(t *testing.T, handOff bool) {
	cfg := smallConfig(t)
	local, ds := trainLocal(t, cfg)
	maxPayload := int32(networkSize(t, cfg, ds)) // 4 bytes a value: a quarter of a gradient
	srv := runNATSPayload(t, t.TempDir(), maxPayload)
	nc := connect(t, srv.ClientURL())
	var parts, whole atomic.Int64
	sub, err := nc.Subscribe(protocol.GradsFilter(cfg.Signature()), func(m *nats.Msg) {
		if protocol.IsGradPart(m.Data) {
			parts.Add(1)
		} else {
			whole.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	p := newPool(t, srv.ClientURL())
	if handOff {
		p.handoff = handoff.New()
	}
	p.add(2)
	defer p.close()
	st := openStore(t, "")

	res := trainResumed(t, nc, st, cfg, 30, p.handoff)
	if p.all[0].Tasks() == 0 || p.all[1].Tasks() == 0 {
		t.Fatalf("tasks done by the two workers: %d and %d; want both to compute, on weights stepped with each other's parts", p.all[0].Tasks(), p.all[1].Tasks())
	}
	if whole.Load() != 0 || parts.Load() < 4*int64(res.Step) {
		t.Fatalf("%d whole gradients and %d parts for %d steps; want every gradient in 4 parts at least", whole.Load(), parts.Load(), res.Step)
	}
	if handOff && p.handoff.Taken() < 2*res.Step {
		t.Fatalf("the coordinator took %d parts from the workers, want half of the 4 a step at least (%d)", p.handoff.Taken(), 2*res.Step)
	}
	if res.Digest != local.Digest {
		t.Fatalf("weights %x, the in-process loop's %x", res.Digest[:8], local.Digest[:8])
	}
}

// networkSize is the number of parameters of cfg's network on ds.
func networkSize(t *testing.T, cfg config.Config, ds *model.Dataset) int {
	t.Helper()
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	return net.Layout().Size()
}

// TestAStrayPartDoesNotHoldUpARun starts a run whose grads stream holds a
// part of a gradient that never completes (its worker died midway): the
// coordinator replays the stream, which ends on that part, and goes on.
// When such a part was not delivered, the replay never ended and no task
// ever went out.
func TestAStrayPartDoesNotHoldUpARun(t *testing.T) {
	cfg := smallConfig(t, "epochs=1")
	local, ds := trainLocal(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := protocol.Ensure(ctx, js, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stray := protocol.GradPart{Grad: protocol.Grad{Run: cfg.Signature(), Step: 0, Shard: 0, Worker: "died-midway",
		Stats: []protocol.ShardStats{{Count: 1}}, Grad: []float32{1}}, Total: uint32(networkSize(t, cfg, ds))}
	b, _ := stray.MarshalBinary()
	if _, err := js.Publish(ctx, protocol.GradSubject(cfg.Signature(), 0, 0), b); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	res, err := train(t, ctx, nc, openStore(t, ""), cfg, Hooks{})
	if err != nil {
		t.Fatalf("a run whose stream ends on a stray part: %v", err)
	}
	if res.Digest != local.Digest {
		t.Fatalf("weights %x, the in-process loop's %x", res.Digest[:8], local.Digest[:8])
	}
}
