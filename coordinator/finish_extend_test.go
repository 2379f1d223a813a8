package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := grads.Info(ctx, jetstream.WithSubjectFilter(protocol.GradsFilter(first.Run)))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(info.State.Subjects); n != 0 {
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
