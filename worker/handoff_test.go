package worker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/protocol"
)

// TestHandedOffMessagesAreTheStoredOnes: a worker given an exchange puts
// every gradient message it publishes there, under the message's id and
// the worker header it sends with it, and the bytes are those the stream
// stored. The step's sum goes out from the buffer the replica summed it
// in, without a copy, and that buffer carries the next gradient only once
// the exchange's taker is done with it and the replica has let go of it
// (it applied the step, or the worker stopped).
func TestHandedOffMessagesAreTheStoredOnes(t *testing.T) {
	nc, js := startJetStream(t)
	ctx := context.Background()
	defer func(d time.Duration) { aloneWait = d }(aloneWait)
	aloneWait = time.Minute // both shards go as one gradient
	run := startedRun(t, js).Run
	publishStep0(t, js, run)
	x := handoff.New()
	t.Cleanup(x.Attach(run)) // as a reading coordinator does
	w, logs, stopWorker := runWorkerWith(t, nc, slog.LevelInfo, Options{Handoff: x})
	var once sync.Once
	stop := func() { once.Do(stopWorker) }
	defer stop()
	poll(t, logs, "both tasks of step 0 done", func() bool { return w.Tasks() == 2 })
	rep := w.runs.runs[0].rep // the task loop waits for a task: it touches none of it

	grads, err := js.Stream(ctx, protocol.GradsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := grads.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 || uint64(x.Len()) != info.State.Msgs {
		t.Fatalf("the exchange holds %d messages, the stream %d", x.Len(), info.State.Msgs)
	}
	var dones []func()
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := grads.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		k := handoff.Key{MsgID: raw.Header.Get(jetstream.MsgIDHeader), Worker: raw.Header.Get(protocol.WorkerHeader)}
		if k.Worker != w.ID() {
			t.Fatalf("message %d names worker %q, want %q", seq, k.Worker, w.ID())
		}
		data, done, ok := x.Take(k)
		if !ok {
			t.Fatalf("the exchange holds nothing under message %d's %+v", seq, k)
		}
		if !bytes.Equal(data, raw.Data) {
			t.Fatalf("the exchange's bytes of message %d differ from the stored ones", seq)
		}
		if rep.lent == nil || &data[len(data)-1] != &rep.lent.whole[len(rep.lent.whole)-1] {
			t.Fatalf("message %d is not in the buffer the replica summed the step in", seq)
		}
		dones = append(dones, done)
	}
	if n := len(w.bufs.spare); n != 0 {
		t.Fatalf("%d encoding buffers back for reuse while the exchange's taker still reads them", n)
	}
	for _, done := range dones {
		done()
	}
	if n := len(w.bufs.spare); n != 0 {
		t.Fatalf("%d encoding buffers back for reuse before the replica applied the step", n)
	}
	stop() // the worker lets go of its runs, and of the sum its replica lent
	if n := len(w.bufs.spare); n != 1 {
		t.Fatalf("%d encoding buffers back for reuse once the taker is done and the replica let go, want 1", n)
	}
}

// TestGradientsNotStoredAreTakenBack: the messages of a gradient the
// broker refused leave the exchange, where nobody would take them.
func TestGradientsNotStoredAreTakenBack(t *testing.T) {
	nc, _, run := fullStore(t)
	x := handoff.New()
	t.Cleanup(x.Attach(run))
	w, logs, stop := runWorkerWith(t, nc, slog.LevelInfo, Options{Handoff: x})
	poll(t, logs, "a refused publish", func() bool { return failedPublishes(w) >= 1 })
	stop() // waits for every publish to end
	if x.Puts() == 0 {
		t.Fatal("the worker put nothing in the exchange")
	}
	if n := x.Len(); n != 0 {
		t.Fatalf("the exchange holds %d messages of refused gradients", n)
	}
	if n := len(w.bufs.spare); n != 0 {
		t.Fatalf("%d buffers of refused gradients back for reuse: the client may still send them", n)
	}
}
