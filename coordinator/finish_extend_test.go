package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
)

// TestAFinishedRunLeavesNoGradientsAndCanBeExtended: once a run is done,
// the broker holds none of its gradients (its final checkpoint and the
// snapshot workers start from cover them all); raising its epochs then
// resumes it from that checkpoint, with fresh workers that start from that
// snapshot, to the weights of a run trained that long from the start.
func TestAFinishedRunLeavesNoGradientsAndCanBeExtended(t *testing.T) {
	short := smallConfig(t, "epochs=1")
	long := smallConfig(t, "epochs=2")
	if short.Signature() != long.Signature() {
		t.Fatalf("raising epochs changed the run: %s, %s", short.Signature(), long.Signature())
	}
	want, _ := trainLocal(t, long)

	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	p := newPool(t, srv.ClientURL())
	p.add(2)
	first, err := train(t, ctx, nc, st, short, Hooks{})
	p.close()
	if err != nil {
		t.Fatal(err)
	}
	if n := runGradients(t, ctx, nc, first.Run); n != 0 {
		t.Fatalf("the finished run left gradients of %d shards in the grads stream, want none", n)
	}

	p = newPool(t, srv.ClientURL())
	p.add(2)
	res, err := train(t, ctx, nc, st, long, Hooks{})
	p.close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != first.Step || res.Digest != want.Digest {
		t.Fatalf("extended run: resumed at step %d with weights %x, want step %d and %x", res.Resumed, res.Digest, first.Step, want.Digest)
	}
}

// TestARunFinishedOnReplayLeavesNoGradients: a coordinator stopped as the
// last step commits leaves the run to the next one, which replays that
// step from the stream, finds the run done, and still stores the final
// snapshot and purges every gradient of the run.
func TestARunFinishedOnReplayLeavesNoGradients(t *testing.T) {
	cfg := smallConfig(t, "epochs=1")
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want, ds := trainLocal(t, cfg)
	last := uint64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) * cfg.Epochs)

	p := newPool(t, srv.ClientURL())
	p.add(2)
	first, stop := context.WithCancel(ctx)
	defer stop()
	_, err := train(t, first, nc, st, cfg, Hooks{Committed: func(step uint64, _ [8]byte) {
		if step == last-1 {
			stop() // before the last step's gradients come in
		}
	}})
	p.close()
	if err == nil {
		t.Fatal("the stopped coordinator reported the run done")
	}
	left := runGradients(t, ctx, nc, cfg.Signature())
	if left == 0 {
		t.Fatal("no gradients left to replay: the test does not test the replay")
	}

	p = newPool(t, srv.ClientURL())
	p.add(1)
	res, err := train(t, ctx, nc, st, cfg, Hooks{})
	p.close()
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.Digest {
		t.Fatalf("weights %x, want %x", res.Digest, want.Digest)
	}
	if n := runGradients(t, ctx, nc, cfg.Signature()); n != 0 {
		t.Fatalf("the run finished on replay left gradients of %d shards (%d before), want none", n, left)
	}
}

// runGradients is how many subjects of run's gradients the grads stream
// holds.
func runGradients(t *testing.T, ctx context.Context, nc *nats.Conn, run string) int {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := grads.Info(ctx, jetstream.WithSubjectFilter(protocol.GradsFilter(run)))
	if err != nil {
		t.Fatal(err)
	}
	return len(info.State.Subjects)
}
