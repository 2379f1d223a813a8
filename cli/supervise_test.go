package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/protocol"
)

// TestAnInProcessWorkerThatStopsIsStartedAgain: an in-process worker that
// stops with an error is logged at once and started again, until it runs
// to the end of its context; one that ends cleanly is not started again.
func TestAnInProcessWorkerThatStopsIsStartedAgain(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	starts := 0
	err := superviseWorker(context.Background(), log, time.Millisecond, func(context.Context) error {
		starts++
		if starts < 3 {
			return errors.New("natsconn: server unreachable")
		}
		return nil
	})
	if err != nil || starts != 3 {
		t.Fatalf("supervised worker: %d starts, ended with %v; want 3 starts and nil", starts, err)
	}
	if n := strings.Count(logs.String(), "an in-process worker stopped; starting it again"); n != 2 {
		t.Fatalf("want the two stops logged, got:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "server unreachable") {
		t.Fatalf("the log does not say why the worker stopped:\n%s", logs.String())
	}

	// Stopped by its context, it is not started again.
	ctx, cancel := context.WithCancel(context.Background())
	starts = 0
	err = superviseWorker(ctx, log, time.Hour, func(context.Context) error {
		starts++
		cancel()
		return context.Canceled
	})
	if starts != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("a worker stopped with its context: %d starts, %v", starts, err)
	}
}

// TestStartRestartsAnInProcessWorkerThatCouldNotConnect: `coordinator
// start --workers 1` against a server that refuses the worker's connection
// (it takes one client, the coordinator's) logs why the worker stopped and
// starts it again; once the server takes more clients, the worker joins
// and the run completes.
func TestStartRestartsAnInProcessWorkerThatCouldNotConnect(t *testing.T) {
	opts := server.Options{JetStream: true, StoreDir: t.TempDir(), MaxPayload: protocol.MaxPayload, MaxConn: 1}
	s := natstest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	root := Coordinator()
	root.SetArgs([]string{"start", "--nats", s.ClientURL(), "--workers", "1", "--quiet", "--data-dir", t.TempDir(), "--s3-listen", freeAddr(t),
		"--set", "dataset=synthetic", "--set", "hidden=[8]", "--set", "batch_size=64", "--set", "epochs=1"})
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	const restart = "an in-process worker stopped; starting it again"
	for !strings.Contains(stderr.String(), restart) {
		select {
		case err := <-done:
			t.Fatalf("start ended (%v) before its worker was started again:\n%s", err, lastLines(stderr.String(), 40))
		case <-ctx.Done():
			t.Fatalf("the refused worker was not started again:\n%s", lastLines(stderr.String(), 40))
		case <-time.After(20 * time.Millisecond): // polling interval
		}
	}
	// The refusal reaches the client as a closed connection or as the
	// server's -ERR, depending on which comes first.
	if !strings.Contains(stderr.String(), `err="natsconn: `) {
		t.Fatalf("the log does not say why the worker stopped:\n%s", lastLines(stderr.String(), 40))
	}
	more := opts
	more.Host, more.Port, more.NoSigs, more.NoLog = "127.0.0.1", s.Addr().(*net.TCPAddr).Port, true, true
	more.MaxConn = 0
	if err := s.ReloadOptions(&more); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("start: %v\n%s", err, lastLines(stderr.String(), 40))
	}
	if !strings.Contains(stdout.String(), "complete") {
		t.Fatalf("start printed %q, want a completed run", stdout.String())
	}
}
