package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// TestSnapshotsLargerThanMaxPayload trains on a server whose max payload
// holds a gradient but not a snapshot (the weights and Adam's two moments
// are three times a gradient): the snapshot goes to the object store in
// chunks, the first worker starts from it, a second one joins mid-run from
// a checkpoint's and takes over (the first stops, so the run can only end
// if the second works), and the weights are the in-process loop's.
func TestSnapshotsLargerThanMaxPayload(t *testing.T) {
	cfg := smallConfig(t)
	local, ds := trainLocal(t, cfg)
	maxPayload := int32(4*networkSize(t, cfg, ds) + 16<<10) // a gradient and its header
	srv := runNATSPayload(t, t.TempDir(), maxPayload)
	nc := connect(t, srv.ClientURL())
	p := newPool(t, srv.ClientURL())
	p.add(1)
	joinAt := uint64(3 * cfg.CheckpointEvery / 2)
	var snapshot *jetstream.ObjectInfo
	res, err := train(t, context.Background(), nc, openStore(t, ""), cfg, Hooks{Committed: func(step uint64, _ [8]byte) {
		if step != joinAt {
			return
		}
		// The checkpoint's snapshot is written in the background: wait
		// for it, then let a second worker join from it.
		js, _ := jetstream.New(nc)
		obs, err := js.ObjectStore(context.Background(), protocol.StateBucket)
		if err != nil {
			t.Error(err)
			return
		}
		for deadline := time.Now().Add(30 * time.Second); snapshot == nil; time.Sleep(10 * time.Millisecond) { // polling interval
			if time.Now().After(deadline) {
				t.Errorf("no snapshot of step %d or later after 30 s", cfg.CheckpointEvery)
				break
			}
			info, err := obs.GetInfo(context.Background(), protocol.StateObject(cfg.Signature()))
			if err != nil {
				continue // not written yet
			}
			if at, ok := protocol.SnapshotStep(info); ok && at >= uint64(cfg.CheckpointEvery) {
				snapshot = info
			}
		}
		p.add(1)
		p.remove() // the first worker: its held tasks go back to the consumer
	}})
	if err != nil {
		t.Fatal(err)
	}
	p.close()
	if snapshot == nil || snapshot.Size <= uint64(maxPayload) || snapshot.Chunks < 2 {
		t.Fatalf("snapshot at step %d: %+v; want more than the max payload of %d bytes, in chunks", joinAt, snapshot, maxPayload)
	}
	if step, ok := protocol.SnapshotStep(snapshot); !ok || step != uint64(cfg.CheckpointEvery) {
		t.Errorf("snapshot at step %d is of step %d (%v), want the checkpoint's, %d", joinAt, step, ok, cfg.CheckpointEvery)
	}
	if p.all[1].Tasks() == 0 {
		t.Error("the worker that joined mid-run took no task")
	}
	if res.Digest != local.Digest {
		t.Fatalf("weights %x, the in-process loop's %x", res.Digest[:8], local.Digest[:8])
	}
}

// TestSnapshotFlushWaitsForTheWrite: flush returns once the newest
// snapshot offered is stored, on a real object store, and at once when
// none is waiting.
func TestSnapshotFlushWaitsForTheWrite(t *testing.T) {
	nc, js := runStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	obs, err := js.ObjectStore(ctx, protocol.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	s := newSnapshots(obs, nc.MaxPayload(), quietLog(), &roomGuard{log: quietLog()}, newTrimmer(nil, "flushed", quietLog()), time.Now)
	if err := s.flush(ctx); err != nil {
		t.Fatalf("flush with nothing offered: %v", err)
	}
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.loop(loopCtx)
	const step = 7
	s.offer(&protocol.Params{Run: "flushed", Step: step, Weights: make([]float32, 1<<18), OptState: []byte{1}})
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, protocol.StateObject("flushed"))
	if err != nil {
		t.Fatalf("after flush: %v, want the snapshot stored", err)
	}
	if at, ok := protocol.SnapshotStep(info); !ok || at != step {
		t.Fatalf("after flush the stored snapshot is of step %d (%v), want %d", at, ok, step)
	}
}
