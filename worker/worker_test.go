package worker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// syncBuffer is a log sink safe for the worker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestMalformedTaskIsTerminated publishes garbage and a task for a run that
// does not exist: the worker logs each once with its subject and sequence,
// terminates it so it is never redelivered, and keeps serving.
func TestMalformedTaskIsTerminated(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := protocol.Ensure(ctx, js, 1, time.Second); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	w, err := New(nc, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()

	if _, err := js.Publish(ctx, protocol.TasksSubject("abc"), []byte("not a task")); err != nil {
		t.Fatal(err)
	}
	orphan := protocol.Task{Run: "no-such-run", Step: 1, Shard: 0, Shards: 1, Indices: []int32{1}}
	b, _ := orphan.MarshalBinary()
	if _, err := js.Publish(ctx, protocol.TasksSubject(orphan.Run), b); err != nil {
		t.Fatal(err)
	}

	stream, _ := js.Stream(ctx, protocol.TasksStream)
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err == nil && info.State.Msgs == 0 {
			break // both terminated: gone from the work queue
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks still queued: %+v\n%s", info.State, logs.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"dropping malformed task on jt.tasks.abc (stream JT_TASKS seq 1)", "dropping task for an unusable run on jt.tasks.no-such-run (stream JT_TASKS seq 2)"} {
		if strings.Count(out, want) != 1 {
			t.Errorf("want one log line with %q, got:\n%s", want, out)
		}
	}
}
