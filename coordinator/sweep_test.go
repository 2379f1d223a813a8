package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestASweepOfThreeRunsSharesAWorker trains three runs at once (a seed
// sweep: three coordinators on one broker and one bucket) with a single
// worker. Their tasks come interleaved from the workers' one consumer;
// the worker keeps all three set up, loading each once, and every run ends
// with the weights the in-process loop gives it.
func TestASweepOfThreeRunsSharesAWorker(t *testing.T) {
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	st := openStore(t, "")
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()

	var runs []*backgroundRun
	var wants [][32]byte
	for seed := 1; seed <= 3; seed++ {
		cfg := smallConfig(t, "epochs=1", fmt.Sprintf("seed=%d", seed))
		want, _ := trainLocal(t, cfg)
		wants = append(wants, want.Digest)
		runs = append(runs, inBackground(t, func(ctx context.Context) (*Result, error) {
			return train(t, ctx, nc, st, cfg, Hooks{})
		}))
	}
	for i, run := range runs {
		r := run.result(t, 2*time.Minute, "of starting three runs at once")
		if r.err != nil {
			t.Fatalf("run %d: %v", i+1, r.err)
		}
		if r.res.Digest != wants[i] {
			t.Fatalf("run %d: weights %x, want %x", i+1, r.res.Digest, wants[i])
		}
	}
	if n := p.all[0].RunsLoaded(); n != 3 {
		t.Fatalf("the worker set runs up %d times for three runs: it put runs away and set them up again", n)
	}
}
