package coordinator

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/protocol"
)

// TestANewAckWaitReachesTheWorkers: a coordinator started with an ack wait
// other than the consumer's (coordinator start --ack-wait) sets it, says
// so, and the workers already running keep their tasks alive by the new
// one at once, not at their next periodic look a minute later. One started
// without leaves it as it is. Both runs end with the in-process loop's
// weights.
func TestANewAckWaitReachesTheWorkers(t *testing.T) {
	cfg, local, srv, nc, js := ackWaitScene(t)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, 30*time.Second); err != nil { // as an earlier coordinator left it
		t.Fatal(err)
	}
	p := newPool(t, srv.ClientURL())
	p.add(2)
	waitAckWait := func(want time.Duration, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ; time.Sleep(5 * time.Millisecond) { // polling
			ok := true
			for _, w := range p.all {
				ok = ok && w.AckWait() == want
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the workers' ack waits are %v and %v after %v, want %v", p.all[0].AckWait(), p.all[1].AckWait(), within, want)
			}
		}
	}
	waitAckWait(30*time.Second, 10*time.Second)

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := Train(ctx, nc, openStore(t, ""), Options{Config: cfg, Log: log, AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitAckWait(2*time.Second, 10*time.Second) // their periodic look is a minute apart
	if !strings.Contains(logs.String(), "new ack wait") {
		t.Errorf("the coordinator did not say it changed the ack wait:\n%s", logs.String())
	}
	if fmt.Sprintf("%x", res.Digest) != fmt.Sprintf("%x", local.Digest) {
		t.Fatal("the weights differ from the in-process loop's")
	}

	// A second run, started with no ack wait: the consumer keeps 2 s.
	cfg2 := smallConfig(t, "seed=2")
	local2, _ := trainLocal(t, cfg2)
	logs.Reset()
	res2, err := Train(ctx, nc, openStore(t, ""), Options{Config: cfg2, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%x", res2.Digest) != fmt.Sprintf("%x", local2.Digest) {
		t.Fatal("the second run's weights differ from the in-process loop's")
	}
	cons, err := js.Consumer(ctx, protocol.TasksStream, protocol.WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.AckWait; got != 2*time.Second {
		t.Errorf("a coordinator started with no ack wait left the consumer's at %v, want 2s", got)
	}
	if strings.Contains(logs.String(), "new ack wait") {
		t.Errorf("a coordinator started with no ack wait said it changed it:\n%s", logs.String())
	}
}

// TestAStalledStepIsHandedOutAgainByTheAckWaitACoordinatorSet: a step that
// makes no progress for four ack waits (its tasks lost with a broker's
// state; here, no worker takes them) has its missing shards handed out
// again. The node goes by the consumer's ack wait as another coordinator
// sets it while the run is under way: started under 30 s, it would wait two
// minutes; once the consumer's is 1 s, it hands the shards out within
// seconds, and a worker then joining ends the run with the in-process
// loop's weights.
func TestAStalledStepIsHandedOutAgainByTheAckWaitACoordinatorSet(t *testing.T) {
	cfg, local, srv, nc, js := ackWaitScene(t)
	ctx := context.Background()
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Train(ctx, nc, openStore(t, ""), Options{Config: cfg, Log: log, AckWait: 30 * time.Second})
		done <- result{res, err}
	}()
	waitForSnapshot(t, nc, cfg.Signature())
	// Another coordinator sets the consumer's ack wait to a second.
	if err := protocol.Ensure(ctx, js, 1, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(protocol.ConsumerChangedSubject, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "re-dispatching its missing shards"); time.Sleep(10 * time.Millisecond) { // polling
		if time.Now().After(deadline) {
			t.Fatalf("the stalled step's shards were not handed out again within 20 s of the new ack wait:\n%s", logs.String())
		}
	}
	newPool(t, srv.ClientURL()).add(1)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if fmt.Sprintf("%x", r.res.Digest) != fmt.Sprintf("%x", local.Digest) {
		t.Fatal("the weights differ from the in-process loop's")
	}
}

// ackWaitScene is a run of smallConfig to train, the in-process loop's
// result of it, and a server of the test's own with a client.
func ackWaitScene(t *testing.T) (config.Config, *Result, *server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	cfg := smallConfig(t)
	local, _ := trainLocal(t, cfg)
	srv := runNATS(t, t.TempDir())
	nc := connect(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, local, srv, nc, js
}
