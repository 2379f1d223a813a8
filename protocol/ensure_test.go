package protocol

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/natstest"
)

// TestEnsureCreatesEverythingOnce: on a real server, Ensure creates the
// streams, the snapshot store, the workers' consumer, jettrain's buckets
// and the caller's, and a second call (a restarted coordinator, or its
// standby) changes nothing and fails nothing.
func TestEnsureCreatesEverythingOnce(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	extra := jetstream.KeyValueConfig{Bucket: "callers-bucket", TTL: time.Minute}
	for range 2 {
		if err := Ensure(ctx, js, 1, 3*time.Second, extra); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{TasksStream, GradsStream, ParamsStream, "OBJ_" + StateBucket, "KV_" + RunsBucket, "KV_" + StatusBucket, "KV_callers-bucket"} {
		if _, err := js.Stream(ctx, name); err != nil {
			t.Errorf("stream %s: %v", name, err)
		}
	}
	cons, err := js.Consumer(ctx, TasksStream, WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.AckWait; got != 3*time.Second {
		t.Errorf("consumer ack wait %v, want 3s", got)
	}
	kv, err := js.KeyValue(ctx, "callers-bucket")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.TTL() != time.Minute {
		t.Errorf("the caller's bucket: %v, %v", st, err)
	}
}

// TestAllReportsTheFirstFailureInOrder: the creations run at once, and the
// error reported is that of the first in the order given, whichever failed
// first, so the same failure gives the same line.
func TestAllReportsTheFirstFailureInOrder(t *testing.T) {
	errA, errB := errors.New("a"), errors.New("b")
	bFailed := make(chan struct{})
	ran := make([]bool, 3)
	err := all(
		func() error { <-bFailed; ran[0] = true; return errA }, // fails after b
		func() error { defer close(bFailed); ran[1] = true; return errB },
		func() error { ran[2] = true; return nil },
	)
	if !errors.Is(err, errA) {
		t.Fatalf("got %v, want the first function's error", err)
	}
	if !ran[0] || !ran[1] || !ran[2] {
		t.Fatalf("ran %v: every function runs, whatever fails", ran)
	}
	if err := all(func() error { return nil }, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestUnansweredCreationCountsIfDone: a creation with no answer (as when
// two coordinators create a stream at once on a cluster) counts as done
// when the stream is there, and is an error naming it when it is not.
func TestUnansweredCreationCountsIfDone(t *testing.T) {
	ctx := context.Background()
	unanswered := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	there := func(context.Context) error { return nil }
	missing := func(context.Context) error { return jetstream.ErrStreamNotFound }
	if err := ensureOne(ctx, 10*time.Millisecond, "stream X", unanswered, there); err != nil {
		t.Fatalf("created but unanswered: %v", err)
	}
	err := ensureOne(ctx, 10*time.Millisecond, "stream X", unanswered, missing)
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "protocol: stream X: context deadline exceeded" {
		t.Fatalf("unanswered and not there: %v", err)
	}
	refused := errors.New("refused")
	if err := ensureOne(ctx, 10*time.Millisecond, "stream X", func(context.Context) error { return refused }, there); !errors.Is(err, refused) {
		t.Fatalf("a refusal is reported even if the stream is there: %v", err)
	}
}

// TestEnsureSetsTheAckWaitOnlyWhenAsked: a new consumer gets the ack wait
// asked for, or DefaultAckWait; a later Ensure with none (a coordinator
// started without --ack-wait) leaves the consumer's as it is, and one with
// another changes it.
func TestEnsureSetsTheAckWaitOnlyWhenAsked(t *testing.T) {
	ctx := context.Background()
	ackWait := func(js jetstream.JetStream) time.Duration {
		t.Helper()
		cons, err := js.Consumer(ctx, TasksStream, WorkersConsumer)
		if err != nil {
			t.Fatal(err)
		}
		return cons.CachedInfo().Config.AckWait
	}
	for _, c := range []struct {
		name  string
		calls []time.Duration
		want  time.Duration
	}{
		{"none asked", []time.Duration{0}, DefaultAckWait},
		{"asked", []time.Duration{3 * time.Second}, 3 * time.Second},
		{"asked, then none", []time.Duration{3 * time.Second, 0}, 3 * time.Second},
		{"asked, then another", []time.Duration{3 * time.Second, 0, 40 * time.Second}, 40 * time.Second},
	} {
		js := startJetStream(t)
		for _, d := range c.calls {
			if err := Ensure(ctx, js, 1, d); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		if got := ackWait(js); got != c.want {
			t.Errorf("%s: ack wait %v, want %v", c.name, got, c.want)
		}
	}
}

// TestEnsureUpdatesAnOlderConsumerButItsAckWait: a consumer an older
// version created with another configuration is brought up to date by an
// Ensure that sets no ack wait, and keeps its ack wait.
func TestEnsureUpdatesAnOlderConsumerButItsAckWait(t *testing.T) {
	js := startJetStream(t)
	ctx := context.Background()
	if err := Ensure(ctx, js, 1, 0); err != nil {
		t.Fatal(err)
	}
	older := WorkersConsumerConfig(7 * time.Second)
	older.Description = "an older jettrain's consumer"
	if _, err := js.UpdateConsumer(ctx, TasksStream, older); err != nil {
		t.Fatal(err)
	}
	if err := Ensure(ctx, js, 1, 0); err != nil {
		t.Fatal(err)
	}
	cons, err := js.Consumer(ctx, TasksStream, WorkersConsumer)
	if err != nil {
		t.Fatal(err)
	}
	got := cons.CachedInfo().Config
	if got.AckWait != 7*time.Second || got.Description != WorkersConsumerConfig(0).Description {
		t.Fatalf("consumer ack wait %v, description %q; want 7s and %q", got.AckWait, got.Description, WorkersConsumerConfig(0).Description)
	}
}

// startJetStream starts a JetStream server of the test's own and returns a
// client of it.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := natstest.Start(t, server.Options{JetStream: true, StoreDir: t.TempDir()})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return js
}
