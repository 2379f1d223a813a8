package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/model"
)

// Refusals for want of room end the run once no step has gone through
// for the grace (at least noRoomGrace) since the first of them; a commit
// clears them, and failures of another kind are not refusals.
func TestRoomGuard(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	full := fmt.Errorf("coordinator: publishing: %w", &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"})
	quota := &jetstream.APIError{Code: 400, ErrorCode: 10002, Description: "resource limits exceeded for account"}
	timeout := errors.New("nats: timeout")
	g := roomGuard{log: quietLog()}

	g.refused(timeout, t0)
	if err := g.expired(t0.Add(time.Hour), 0); err != nil {
		t.Fatalf("a timeout ends the run: %v", err)
	}
	g.refused(full, t0)
	g.refused(quota, t0.Add(noRoomGrace/2)) // the first refusal counts
	if err := g.expired(t0.Add(noRoomGrace-time.Millisecond), time.Second); err != nil {
		t.Fatalf("no room within the grace: %v", err)
	}
	err := g.expired(t0.Add(noRoomGrace), time.Second)
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "insufficient resources") || strings.Count(err.Error(), "coordinator:") != 1 {
		t.Fatalf("no room past the grace: %v, want %v with the server's words, once", err, ErrNoRoom)
	}
	// Steps of a minute pass a grace of some minutes.
	if err := g.expired(t0.Add(3*time.Minute), 4*time.Minute); err != nil {
		t.Fatalf("no room within a slow run's grace: %v", err)
	}
	g.committed()
	if err := g.expired(t0.Add(2*noRoomGrace), 0); err != nil {
		t.Fatalf("no room, then a commit: %v", err)
	}
	// A refusal after the commit starts a new grace.
	t1 := t0.Add(3 * noRoomGrace)
	g.refused(quota, t1)
	if g.expired(t1.Add(noRoomGrace-time.Millisecond), 0) != nil || !errors.Is(g.expired(t1.Add(noRoomGrace), 0), ErrNoRoom) {
		t.Fatal("a refusal after a commit does not start a new grace")
	}
}

// A NATS server whose store runs out of room mid-run ends the run with
// ErrNoRoom instead of retrying forever; once it has room (here: started
// again on the same store without the limit), the same config resumes
// and ends with the in-process loop's weights.
func TestNoRoomStopsTheRunAndLosesNothing(t *testing.T) {
	// No checkpoint before the run ends: nothing trims the grads stream.
	cfg := smallConfig(t, "checkpoint_every=100000", "epochs=1")
	want, ds := trainLocal(t, cfg)
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		t.Fatal(err)
	}
	gradBytes := int64(net.Layout().Size()) * 4
	net.Close()
	steps := int64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) * cfg.Epochs)

	dir := t.TempDir()
	// Room for the gradients of about half the run.
	srv := runNATSOpts(t, server.Options{StoreDir: dir, JetStreamMaxStore: steps * gradBytes / 2})
	p := newPool(t, srv.ClientURL())
	p.add(1)
	st := openStore(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last uint64
	_, err = train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{Committed: func(step uint64, _ [8]byte) { last = step }})
	if !errors.Is(err, ErrNoRoom) {
		t.Fatalf("the run ended with %v, want %v", err, ErrNoRoom)
	}
	if last == 0 || last >= uint64(steps) {
		t.Fatalf("the run stopped after step %d of %d, want part of the way", last, steps)
	}

	// Started again while the server still has no room, the run stops at
	// once with the same error.
	start := time.Now()
	if _, err := train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{}); !errors.Is(err, ErrNoRoom) {
		t.Fatalf("started again without room: %v, want %v", err, ErrNoRoom)
	}
	if took := time.Since(start); took > noRoomGrace {
		t.Fatalf("started again without room, the run took %v to stop", took)
	}
	p.close()
	srv.Shutdown()
	srv.WaitForShutdown()

	srv = runNATS(t, dir)
	p = newPool(t, srv.ClientURL())
	p.add(1)
	defer p.close()
	res, err := train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.Digest {
		t.Fatalf("resumed run ended with weights %x, the in-process loop with %x", res.Digest, want.Digest)
	}
}
