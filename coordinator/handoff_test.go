package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/worker"
)

// TestHandedOffGradientsGiveTheSameWeights trains with a coordinator that
// reads the grads stream's headers only and takes the gradients of the
// workers in its process from memory. A worker of another pool, which
// hands nothing over, computes the first steps alone: the coordinator
// fetches its gradients from the stream, and a malformed one slipped in
// among them. The coordinator stops after a checkpoint, and the next one
// replays the stream from there. The weights are the in-process loop's.
func TestHandedOffGradientsGiveTheSameWeights(t *testing.T) {
	cfg := smallConfig(t)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	x := handoff.New()
	inProcess := newPool(t, srv.ClientURL())
	inProcess.handoff = x
	other := newPool(t, srv.ClientURL())
	other.add(1)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first, stop := context.WithCancel(ctx)
	defer stop()
	opts := Options{Config: cfg, Log: quietLog(), AckWait: 2 * time.Second, Handoff: x}
	opts.Hooks = Hooks{
		Committed: func(step uint64, _ [8]byte) {
			switch step {
			case 1:
				if _, err := js.Publish(ctx, protocol.GradSubject(cfg.Signature(), 2, 0), []byte("garbage")); err != nil {
					t.Error(err)
				}
			case 3:
				inProcess.add(2)
			}
		},
		Saved: func(step uint64) {
			if step == 20 {
				stop()
			}
		},
	}
	if _, err := Train(first, nc, st, opts); err == nil {
		t.Fatal("the stopped run reported success")
	}
	taken := x.Taken()
	opts.Hooks = Hooks{}
	res, err := Train(ctx, nc, st, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed < 20 {
		t.Fatalf("resumed from step %d, want the checkpoint at 20 or a later one", res.Resumed)
	}
	// It computed the first three steps alone: the coordinator fetched
	// those gradients.
	if n := other.tasks(); n < 3*uint64(cfg.Shards) {
		t.Fatalf("the worker that hands nothing over computed %d tasks, want the first three steps' %d at least", n, 3*cfg.Shards)
	}
	if taken == 0 {
		t.Fatal("the coordinator took no gradient from the in-process workers")
	}
	local, _ := trainLocal(t, cfg)
	if got, want := fmt.Sprintf("%x", res.Digest), fmt.Sprintf("%x", local.Digest); got != want {
		t.Fatalf("weights %s, want the in-process loop's %s", got, want)
	}
}

// TestWorkersHandingEachOtherGradientsGiveTheSameWeights trains with three
// in-process workers that hand each other their gradients in memory
// (worker.Peers), beside a worker of another pool, which is no peer of
// theirs: its gradients reach them by subscription only. The replicas
// read their peers' gradients from memory, and the weights are the
// in-process loop's.
func TestWorkersHandingEachOtherGradientsGiveTheSameWeights(t *testing.T) {
	res, inProcess, other, _ := trainBesidePeers(t, smallConfig(t), protocol.MaxPayload, 3, false)
	if n := inProcess.peers.Taken(); n < res.Step {
		t.Fatalf("the workers read %d of each other's gradients from memory in %d steps, want one a step at least", n, res.Step)
	}
	if other.tasks() == 0 {
		t.Fatal("the worker of the other pool computed no task")
	}
}

// Peers may share one connection made with nats.NoEcho: the broker then
// sends none of their gradients back to them, and they still hear each
// other, in memory, and the worker of another process by subscription.
// Gradients too large for one message are offered to peers in parts.
// Every way, the weights are the in-process loop's.
func TestPeersSharingAConnectionGiveTheSameWeights(t *testing.T) {
	for _, c := range []struct {
		name       string
		maxPayload int32
	}{{"whole", protocol.MaxPayload}, {"in parts", 8192}} {
		t.Run(c.name, func(t *testing.T) {
			cfg := smallConfig(t)
			res, inProcess, other, ds := trainBesidePeers(t, cfg, c.maxPayload, 2, true)
			if inProcess.peers.Taken() == 0 {
				t.Fatalf("the workers sharing a connection read none of each other's gradients from memory in %d steps", res.Step)
			}
			if inProcess.tasks() == 0 || other.tasks() == 0 {
				t.Fatalf("the workers sharing a connection computed %d tasks, the other %d: want some each", inProcess.tasks(), other.tasks())
			}
			net, _, err := cfg.NewModel(ds)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			if inParts := 4*net.Layout().Size() > int(c.maxPayload); inParts != (c.maxPayload < protocol.MaxPayload) {
				t.Fatalf("a gradient of %d values with a max payload of %d bytes: in parts %v", net.Layout().Size(), c.maxPayload, inParts)
			}
		})
	}
}

// trainBesidePeers trains cfg on a server whose max payload is maxPayload
// with n in-process workers that are peers (sharing one connection if
// shared) and hand their gradients to the coordinator in memory, beside a
// worker of another pool, and checks that the weights are the in-process
// loop's. It returns the run, both pools and the run's dataset.
func trainBesidePeers(t *testing.T, cfg config.Config, maxPayload int32, n int, shared bool) (res *Result, inProcess, other *pool, ds *model.Dataset) {
	t.Helper()
	srv := runNATSPayload(t, t.TempDir(), maxPayload)
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	x := handoff.New()
	inProcess = newPool(t, srv.ClientURL())
	inProcess.handoff, inProcess.peers, inProcess.shared = x, worker.NewPeers(), shared
	inProcess.add(n)
	other = newPool(t, srv.ClientURL())
	other.add(1)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Train(ctx, nc, st, Options{Config: cfg, Log: quietLog(), AckWait: 2 * time.Second, Handoff: x})
	if err != nil {
		t.Fatal(err)
	}
	local, ds := trainLocal(t, cfg)
	if got, want := fmt.Sprintf("%x", res.Digest), fmt.Sprintf("%x", local.Digest); got != want {
		t.Fatalf("weights %s, the in-process loop's %s", got, want)
	}
	return res, inProcess, other, ds
}
