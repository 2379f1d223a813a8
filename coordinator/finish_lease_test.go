package coordinator

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/internal/syncbuf"
)

// TestALeaseLostWhileFinishingIsGivenUp: a coordinator done training
// waits for its store to take the final checkpoint; another coordinator
// takes the run's lease meanwhile. The first one gives the run up and
// waits as a standby, as it does when it loses the lease mid-run, rather
// than finishing a run it no longer leads. Once the lease is free and the
// store answers again, it finishes the run with the weights of the
// in-process loop.
func TestALeaseLostWhileFinishingIsGivenUp(t *testing.T) {
	cfg := smallConfig(t, "epochs=1")
	local, _ := trainLocal(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	proxy, st := storeBehindProxy(t)
	p := newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()

	logs := new(syncbuf.Buffer)
	var failed atomic.Bool
	opts := Options{Config: cfg, ID: "coordinator-a", LeaseTTL: time.Second, AckWait: 2 * time.Second,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Hooks: Hooks{Committed: func(step uint64, _ [8]byte) {
			if step == local.Step && !failed.Swap(true) { // not again when the run is taken up again
				proxy.Fail(503, "ServiceUnavailable") // the final checkpoint waits
			}
		}}}
	run := inBackground(t, func(ctx context.Context) (*Result, error) { return Train(ctx, nc, st, opts) })
	waitFor := func(what, line string) {
		t.Helper()
		run.until(t, what, func() bool { return strings.Contains(logs.String(), line) }, logs.String)
	}
	waitFor("the wait for the final checkpoint", "waiting for the object store to take the final checkpoint")

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), LeasesBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Coordinator b holds the lease, refreshing it (its TTL is a second)
	// until a has given the run up.
	taken, stopTaking := context.WithCancel(context.Background())
	defer stopTaking()
	tookOver := make(chan struct{})
	go func() {
		defer close(tookOver)
		for {
			if _, err := kv.Put(taken, cfg.Signature(), []byte("coordinator-b")); err != nil && taken.Err() == nil {
				t.Error(err)
			}
			if !pace.Wait(taken, 200*time.Millisecond) { // b's refresh period
				return
			}
		}
	}()
	waitFor("giving the run up", "waiting as a standby")
	stopTaking()
	<-tookOver
	proxy.Pass()
	r := run.result(t, time.Minute, "once the lease was free and the store answered")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, logs.String())
	}
	if r.res.Digest != local.Digest {
		t.Fatalf("weights %x, want the in-process loop's %x", r.res.Digest, local.Digest)
	}
	if len(r.res.History) != cfg.Epochs {
		t.Fatalf("%d history entries, want one for each of the %d epochs", len(r.res.History), cfg.Epochs)
	}
}
