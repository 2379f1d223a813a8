package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/faultproxy"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/objstore"
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
	proxy, err := faultproxy.New(s3URL)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	st, err := objstore.Open(context.Background(), objstore.Config{Endpoint: proxy.URL(), AccessKey: objstore.DefaultAccessKey,
		SecretKey: objstore.DefaultSecretKey, Bucket: fmt.Sprintf("t%d-%d", os.Getpid(), bucketSeq.Add(1))})
	if err != nil {
		t.Fatal(err)
	}
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
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	t.Cleanup(func() { cancel(); <-finished })
	go func() {
		defer close(finished)
		res, err := Train(ctx, nc, st, opts)
		done <- result{res, err}
	}()
	waitFor := func(what, line string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), line); time.Sleep(10 * time.Millisecond) {
			select {
			case r := <-done:
				t.Fatalf("the run ended before %s: %v\n%s", what, r.err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen in a minute\n%s", what, logs.String())
			}
		}
	}
	waitFor("the wait for the final checkpoint", "waiting for the object store to take the final checkpoint")

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, LeasesBucket)
	if err != nil {
		t.Fatal(err)
	}
	// Coordinator b holds the lease, refreshing it (its TTL is a second)
	// until a has given the run up.
	taken, stopTaking := context.WithCancel(ctx)
	tookOver := make(chan struct{})
	go func() {
		defer close(tookOver)
		for {
			if _, err := kv.Put(taken, cfg.Signature(), []byte("coordinator-b")); err != nil && taken.Err() == nil {
				t.Error(err)
			}
			if !pause(taken, 200*time.Millisecond) { // b's refresh period
				return
			}
		}
	}()
	waitFor("giving the run up", "waiting as a standby")
	stopTaking()
	<-tookOver
	proxy.Pass()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%v\n%s", r.err, logs.String())
		}
		if r.res.Digest != local.Digest {
			t.Fatalf("weights %x, want the in-process loop's %x", r.res.Digest, local.Digest)
		}
		if len(r.res.History) != cfg.Epochs {
			t.Fatalf("%d history entries, want one for each of the %d epochs", len(r.res.History), cfg.Epochs)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the run did not end in a minute once the lease was free and the store answered\n%s", logs.String())
	}
}
