package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
)

// TestARunsConfigOutOfReachIsNotAnUnknownRun: a run's config that cannot
// be read because the request was lost (the broker died after reading it)
// is out of reach for now, and its task goes back for later, after a
// lookup's wait rather than the client's 5 s; a run whose config is not in
// the bucket is unknown, and its task is dropped. Before, a task whose
// config read timed out through a broker restart was dropped (terminated),
// under the chaos harness.
func TestARunsConfigOutOfReachIsNotAnUnknownRun(t *testing.T) {
	proxy, nc := natstest.StartLossy(t, server.Options{JetStream: true, StoreDir: t.TempDir(), MaxPayload: protocol.MaxPayload})
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	cfg, _, _ := registerRun(t, js)
	kv, err := js.KeyValue(ctx, protocol.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}

	_, err = newRunCache("", nil, nc).get(ctx, kv, "no-such-run")
	if err == nil || errors.Is(err, errRunOutOfReach) {
		t.Fatalf("a run missing from the bucket: %v, want an unknown run", err)
	}

	proxy.Swallow()
	start := time.Now()
	_, err = newRunCache("", nil, nc).get(ctx, kv, cfg.Signature())
	took := time.Since(start)
	if !errors.Is(err, errRunOutOfReach) {
		t.Fatalf("a config request lost on its way: %v, want %v", err, errRunOutOfReach)
	}
	if took > 3*time.Second {
		t.Fatalf("reading the config took %v before it gave up; a lookup waits %v", took, lookupWait)
	}

	// Out when the connection is lost, the read ends then, long before a
	// lookup's wait.
	proxy.Pass()
	watched := newRunCache("", nil, nc)
	watched.losses = natsconn.WatchLosses(nc)
	defer watched.losses.Close()
	proxy.Swallow()
	dropped := proxy.Dropped()
	got := make(chan error, 1)
	go func() {
		_, err := watched.get(ctx, kv, cfg.Signature())
		got <- err
	}()
	proxy.AwaitDropped(t, dropped)
	start = time.Now()
	proxy.Cut()
	err = <-got
	if took := time.Since(start); !errors.Is(err, errRunOutOfReach) || took > lookupWait/2 {
		t.Fatalf("a config read out when the connection was lost ended after %v with %v, want %v at once", took, err, errRunOutOfReach)
	}

	var r *run
	for deadline := time.Now().Add(10 * time.Second); r == nil; time.Sleep(10 * time.Millisecond) { // polling interval
		if r, err = newRunCache("", nil, nc).get(ctx, kv, cfg.Signature()); err != nil && time.Now().After(deadline) {
			t.Fatalf("the run's config after the broker came back: %v", err)
		}
	}
	r.net.Close()
	r.rep.inbox.close()
}
