package protocol

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// countingGets is an object store that counts the reads begun on it, and
// holds every read after the first until hold is closed.
type countingGets struct {
	jetstream.ObjectStore
	gets atomic.Int32
	hold chan struct{}
}

func (c *countingGets) Get(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) (jetstream.ObjectResult, error) {
	if c.gets.Add(1) > 1 {
		<-c.hold
	}
	return c.ObjectStore.Get(ctx, name, opts...)
}

// TestAStalledSnapshotReadIsStartedOver: a read whose chunks stop coming
// (its consumer lost with a cluster's stream leader, and not made again)
// would wait for its whole context. Here the chunks are gone from the
// stream while the object still names them, so the first read gets no
// byte; it is started over, and the next read, begun once they are back,
// returns the snapshot.
func TestAStalledSnapshotReadIsStartedOver(t *testing.T) {
	defer func(d time.Duration) { readStall = d }(readStall)
	readStall = 300 * time.Millisecond
	js := startJetStream(t)
	ctx := context.Background()
	if err := Ensure(ctx, js, 1, 0); err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	p := &Params{Run: "0123456789abcdef", Step: 7, Weights: make([]float32, 100_000), OptState: []byte{1}}
	for i := range p.Weights {
		p.Weights[i] = float32(i)
	}
	if err := PutSnapshot(ctx, obs, p, 1<<20); err != nil {
		t.Fatal(err)
	}
	want, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, StateObject(p.Run))
	if err != nil {
		t.Fatal(err)
	}
	// The chunks, kept to be put back, then purged.
	stream, err := js.Stream(ctx, "OBJ_"+StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	subject := "$O." + StateBucket + ".C." + info.NUID
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(int(info.Chunks), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var chunks [][]byte
	for m := range batch.Messages() {
		chunks = append(chunks, m.Data())
	}
	if len(chunks) != int(info.Chunks) || info.Chunks < 2 {
		t.Fatalf("read %d chunks of %d", len(chunks), info.Chunks)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		t.Fatal(err)
	}

	store := &countingGets{ObjectStore: obs, hold: make(chan struct{})}
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	go func() {
		raw, err := ReadSnapshot(rctx, store, p.Run)
		done <- result{raw, err}
	}()
	for deadline := time.Now().Add(20 * time.Second); store.gets.Load() < 2; time.Sleep(10 * time.Millisecond) { // polling
		if time.Now().After(deadline) {
			t.Fatal("a read that got no byte for 20 s was not started over")
		}
	}
	for _, c := range chunks { // back whole before the next read begins
		if _, err := js.Publish(ctx, subject, c); err != nil {
			t.Fatal(err)
		}
	}
	close(store.hold)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		if !bytes.Equal(r.raw, want) {
			t.Fatalf("read %d bytes, not the snapshot's %d", len(r.raw), len(want))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the read did not end once the chunks were back")
	}
}
