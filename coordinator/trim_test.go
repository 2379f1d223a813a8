package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/protocol"
)

// TestTrimmerKeepsWhatTheNewestCheckpointAndSnapshotNeed runs the trimmer on
// a real grads stream holding two runs' messages: it purges its run's below
// the newest committed checkpoint whose snapshot is stored too (or refused
// for want of room: the purge makes room), never backwards, only while the
// coordinator leads the run, and leaves the other run's alone.
func TestTrimmerKeepsWhatTheNewestCheckpointAndSnapshotNeed(t *testing.T) {
	_, js := runStreams(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const run, other = "trimmed", "other"
	// Sequences 1-10 are run's, 11 the other run's.
	for step := range uint64(10) {
		if _, err := js.Publish(ctx, protocol.GradSubject(run, step, 0), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, protocol.GradSubject(other, 0, 0), []byte{1}); err != nil {
		t.Fatal(err)
	}
	// Sequences 12-17 are run's again.
	for step := uint64(10); step < 16; step++ {
		if _, err := js.Publish(ctx, protocol.GradSubject(run, step, 0), []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	// first is the first sequence the stream holds of name's run.
	first := func(name string) uint64 {
		t.Helper()
		c, err := grads.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{protocol.GradsFilter(name)}})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		md, err := msg.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		return md.Sequence.Stream
	}
	tr := newTrimmer(grads, run, quietLog())
	leads := true
	tr.leads = func(context.Context) bool { return leads }
	noRoom := fmt.Errorf("putting the snapshot: %w", &jetstream.APIError{Code: 503, ErrorCode: 10023, Description: "insufficient resources"})
	steps := []struct {
		what string
		do   func()
		want uint64
	}{
		{"a checkpoint without its snapshot", func() { tr.checkpointed(ctx, 4, 4) }, 1},
		{"a failed write of its snapshot", func() { tr.snapshotWritten(ctx, 4, errors.New("timeout")) }, 1},
		{"its snapshot", func() { tr.snapshotWritten(ctx, 4, nil) }, 5},
		{"a later snapshot, no later checkpoint", func() { tr.snapshotWritten(ctx, 8, nil) }, 5},
		{"a checkpoint the snapshot covers", func() { tr.checkpointed(ctx, 6, 6) }, 7},
		{"a checkpoint past the snapshot", func() { tr.checkpointed(ctx, 10, 9) }, 7},
		{"an older snapshot stored late", func() { tr.snapshotWritten(ctx, 2, nil) }, 7},
		{"the snapshot of the last checkpoint", func() { tr.snapshotWritten(ctx, 10, nil) }, 10},
		{"a checkpoint whose snapshot is to come", func() { tr.checkpointed(ctx, 12, 12) }, 10},
		{"its snapshot, written when the coordinator may no longer lead", func() { leads = false; tr.snapshotWritten(ctx, 12, nil) }, 10},
		{"the next checkpoint, with the lease held again", func() { leads = true; tr.checkpointed(ctx, 14, 14) }, 10},
		{"its snapshot refused for want of room", func() { tr.snapshotWritten(ctx, 14, noRoom) }, 15},
	}
	for _, s := range steps {
		s.do()
		if got := first(run); got != s.want {
			t.Fatalf("after %s the stream holds the run's gradients from sequence %d, want %d", s.what, got, s.want)
		}
	}
	if got := first(other); got != 11 {
		t.Fatalf("the other run's gradient went: the stream holds its gradients from sequence %d", got)
	}
}

// runStreams starts a real JetStream server with the streams and buckets a
// coordinator makes (protocol.Ensure), and connects to it.
func runStreams(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := connect(t, runNATS(t, t.TempDir()).ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := protocol.Ensure(ctx, js, 1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return nc, js
}
