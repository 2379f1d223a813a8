package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// TestSlowShardsAreNotRedelivered trains a model whose shards take about a
// quarter of a second each under a one-second ack wait, so that a hand of
// tasks takes the worker longer than the ack wait to get through: no task
// may be redelivered all the same (each would be computed twice), every
// task taken is settled, and the weights are the loop's.
//
// The worker joins once the run's first snapshot is stored, so that it
// hands no task back for want of one (a task handed back comes back as a
// redelivery too).
func TestSlowShardsAreNotRedelivered(t *testing.T) {
	cfg := smallConfig(t, "hidden=[1024]", "batch_size=4096", "epochs=4")
	ackWait := time.Second
	if raceBuild {
		ackWait = 3 * time.Second // tasks run slower, a hand of them still longer
	}
	local, _ := trainLocal(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		res, err := Train(context.Background(), nc, openStore(t, ""), Options{Config: cfg, Log: quietLog(), AckWait: ackWait})
		done <- result{res, err}
	}()
	waitForSnapshot(t, nc, cfg.Signature())
	p := newPool(t, srv.ClientURL())
	p.add(1)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Logf("%d steps in %v, %d tasks done", cfg.Epochs, time.Since(start), p.tasks())
	if n := p.all[0].Redelivered(); n > 0 {
		t.Errorf("%d tasks were redelivered to the worker that held them", n)
	}
	p.close()
	if n := p.held(); n != 0 {
		t.Errorf("%d tasks still held once the worker stopped", n)
	}
	if fmt.Sprintf("%x", r.res.Digest) != fmt.Sprintf("%x", local.Digest) {
		t.Fatal("the weights differ from the in-process loop's")
	}
}

// waitForSnapshot waits until the state bucket holds run's snapshot.
func waitForSnapshot(t *testing.T, nc *nats.Conn, run string) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) { // polling
		if obs, err := js.ObjectStore(ctx, protocol.StateBucket); err == nil {
			if _, err := obs.GetInfo(ctx, protocol.StateObject(run)); err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot of run %s within a minute", run)
		}
	}
}
