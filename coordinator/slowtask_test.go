package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSlowShardsAreNotRedelivered trains a model whose shards take a good
// part of a second each, under a short ack wait, so that a hand of tasks
// takes the worker longer than the ack wait to get through: no task may be
// redelivered all the same (each would be computed twice), and the
// weights are the loop's.
func TestSlowShardsAreNotRedelivered(t *testing.T) {
	cfg := smallConfig(t, "hidden=[1024]", "batch_size=4096", "epochs=4")
	local, _ := trainLocal(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	p := newPool(t, srv.ClientURL())
	p.add(1)
	start := time.Now()
	res, err := Train(context.Background(), nc, openStore(t, ""), Options{Config: cfg, Log: quietLog(), AckWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	steps := uint64(cfg.Epochs)
	t.Logf("%d steps in %v, %d tasks done", steps, time.Since(start), p.tasks())
	if n := p.all[0].Redelivered(); n > 0 {
		t.Errorf("%d tasks were redelivered to the worker that held them", n)
	}
	if got := p.tasks(); got != steps*uint64(cfg.Shards) {
		t.Errorf("the worker computed %d tasks, want %d (one per shard)", got, steps*uint64(cfg.Shards))
	}
	p.close()
	if n := p.held(); n != 0 {
		t.Errorf("%d tasks still held once the worker stopped", n)
	}
	if fmt.Sprintf("%x", res.Digest) != fmt.Sprintf("%x", local.Digest) {
		t.Fatal("the weights differ from the in-process loop's")
	}
}
