package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/protocol"
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

// roomRun is the run the no-room tests fill a store with: its config, its
// in-process loop's result, the bytes of one gradient and its steps. No
// checkpoint comes before it ends, so nothing trims the grads stream.
func roomRun(t *testing.T) (cfg config.Config, want *Result, gradBytes, steps int64) {
	t.Helper()
	cfg = smallConfig(t, "checkpoint_every=100000", "epochs=1")
	want, ds := trainLocal(t, cfg)
	net, err := model.New(cfg.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	return cfg, want, int64(net.Layout().Size()) * 4, int64(model.StepsPerEpoch(ds.Train.N, cfg.BatchSize) * cfg.Epochs)
}

// A NATS server whose store runs out of room mid-run ends the run with
// ErrNoRoom instead of retrying forever; once it has room (here: started
// again on the same store without the limit), the same config resumes
// and ends with the in-process loop's weights.
func TestNoRoomStopsTheRunAndLosesNothing(t *testing.T) {
	cfg, want, gradBytes, steps := roomRun(t)

	dir := t.TempDir()
	// Room for the gradients of about half the run.
	srv := runNATSOpts(t, server.Options{StoreDir: dir, JetStreamMaxStore: steps * gradBytes / 2})
	p := newPool(t, srv.ClientURL())
	p.add(1)
	st := openStore(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last uint64
	_, err := train(t, ctx, connect(t, srv.ClientURL()), st, cfg, Hooks{Committed: func(step uint64, _ [8]byte) { last = step }})
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

// An account's quota that refuses only the workers' large gradients, while
// it still takes the coordinator's tasks and commit records, stops the run
// with ErrNoRoom too: the workers report the refusals, and once no step
// has gone through for the grace the coordinator ends the run, where it
// waited without end before.
func TestAccountQuotaOnGradientsStopsTheRun(t *testing.T) {
	cfg, _, gradBytes, steps := roomRun(t)

	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	// Room in the account for the gradients of about half the run.
	text := fmt.Sprintf(`listen: "127.0.0.1:-1"
max_payload: %d
jetstream { store_dir: %q }
accounts { TRAIN { jetstream { max_file: %d, max_mem: -1 }, users: [ { user: train, password: pw } ] } }
`, protocol.MaxPayload, filepath.Join(dir, "js"), steps*gradBytes/2)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	srv := runNATSOpts(t, *o)
	url := fmt.Sprintf("nats://train:pw@%s", srv.Addr())
	p := newPool(t, url)
	p.add(1)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last uint64
	logs := new(syncbuf.Buffer)
	_, err = Train(ctx, connect(t, url), openStore(t, ""), Options{Config: cfg, Log: logs.Logger(), AckWait: 2 * time.Second,
		Hooks: Hooks{Committed: func(step uint64, _ [8]byte) { last = step }}})
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "err_code=10002") {
		t.Fatalf("the run ended with %v, want %v with the account's refusal\n%s", err, ErrNoRoom, logs)
	}
	if last == 0 || last >= uint64(steps) {
		t.Fatalf("the run stopped after step %d of %d, want part of the way", last, steps)
	}
	// The first refusal it heard of was the worker's, before any of its
	// own (the snapshot it stores when a step stalls).
	warned := regexp.MustCompile(`no room left in its store;[^\n]*err="([^"]*)"`).FindStringSubmatch(logs.String())
	if warned == nil || !strings.Contains(warned[1], "the gradients of worker") {
		t.Fatalf("the first refusal warned of is not the worker's: %q\n%s", warned, logs)
	}
}
