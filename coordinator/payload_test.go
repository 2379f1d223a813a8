package coordinator

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/config"
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
		if err := checkPayload(max, 4, mlp); err != nil {
			t.Fatalf("default model refused with a max payload of %d: %v", max, err)
		}
	}
	if err := checkPayload(4<<10, 4, mlp); err == nil || !strings.Contains(err.Error(), "max payload of 4096 bytes is too small") {
		t.Fatalf("max payload of 4 KiB: %v", err)
	}
	if err := checkPayload(protocol.MaxPayload, 4, protocol.MaxParameters+1); err == nil || !strings.Contains(err.Error(), "parameters is over") {
		t.Fatalf("a network over the limit: %v", err)
	}
}

// TestGradientsLargerThanMaxPayload trains on a server whose max payload
// holds a quarter of a gradient: every gradient goes in parts, which two
// workers put together from each other (by subscription, or from the grads
// stream) and the coordinator from the stream — also when it stops after a
// checkpoint and replays the stream from there — and the weights are the
// in-process loop's, bit for bit.
func TestGradientsLargerThanMaxPayload(t *testing.T) {
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
	p.add(2)
	defer p.close()
	st := openStore(t, "")

	res := trainResumed(t, nc, st, cfg, 30)
	if whole.Load() != 0 || parts.Load() < 4*int64(res.Step) {
		t.Fatalf("%d whole gradients and %d parts for %d steps; want every gradient in 4 parts at least", whole.Load(), parts.Load(), res.Step)
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
