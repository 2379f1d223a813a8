package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The embedded server's reports that it cannot write its store, or that
// it has no room left, in the words of nats-server 2.x; its other reports
// are neither.
func TestStoreFailureOf(t *testing.T) {
	for msg, want := range map[string]storeFailure{
		"JetStream stream '$G > JT_GRADS' critical write error: write /d/nats/jetstream/$G/streams/JT_GRADS/msgs/1.blk: no space left on device": storeWriteFailed,
		"Filestore [JT_GRADS] Critical write error: write /d/nats/jetstream/$G/streams/JT_GRADS/msgs/4.blk: file too large":                      storeWriteFailed,
		"Filesystem permission denied while writing msg, disabling JetStream: open /d/1.blk: permission denied":                                  storeWriteFailed,
		"JetStream out of file resources, will be DISABLED":                                                                                      storeWriteFailed,
		"Error writing snapshot: write /d/snap: no space left on device":                                                                         storeWriteFailed,
		"JetStream file resource limits exceeded for server":                                                                                     storeFull,
		"Readiness check failed: client connection closed":                                                                                       storeFine,
		"JetStream failed to store a msg on stream '$G > JT_GRADS': maximum messages exceeded":                                                   storeFine,
	} {
		if got := storeFailureOf(msg); got != want {
			t.Errorf("storeFailureOf(%q) = %v, want %v", msg, got, want)
		}
	}
}

// A failed write ends a run at once; no room ends it only after
// noRoomGrace without a committed step, and a step committed after the
// report clears it.
func TestStoreGuard(t *testing.T) {
	t0 := time.Unix(1000, 0)
	write := &StoreError{Msg: "critical write error"}
	full := &StoreError{Msg: "resource limits exceeded", Full: true}

	var g storeGuard
	if got := g.report(write, t0, t0); got != write {
		t.Fatalf("a failed write: %v, want it to end the run", got)
	}

	g = storeGuard{}
	before := t0.Add(-time.Second) // the last commit, before the report
	if got := g.report(full, t0, before); got != nil {
		t.Fatalf("no room, just reported: %v", got)
	}
	if got := g.check(t0.Add(noRoomGrace-time.Millisecond), before); got != nil {
		t.Fatalf("no room within the grace: %v", got)
	}
	if got := g.check(t0.Add(noRoomGrace), before); got != full {
		t.Fatalf("no room past the grace without a commit: %v, want it to end the run", got)
	}

	g = storeGuard{}
	g.report(full, t0, before)
	after := t0.Add(time.Second)
	if got := g.check(t0.Add(2*noRoomGrace), after); got != nil {
		t.Fatalf("no room, then a commit: %v, want the run to go on", got)
	}
	// A later report starts a new grace.
	t1 := t0.Add(3 * noRoomGrace)
	if got := g.report(full, t1, after); got != nil || g.check(t1.Add(noRoomGrace), after) != full {
		t.Fatal("a report after a commit does not start a new grace")
	}
}

// A real server whose JetStream store is capped reports the refusal in the
// words storeWatch takes for no room.
func TestStoreWatchHearsNoRoom(t *testing.T) {
	got := make(chan *StoreError, 2)
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), JetStreamMaxStore: 1 << 20, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.SetLogger(&storeWatch{dir: "store", failed: got}, false, false)
	go s.Start()
	defer s.Shutdown()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	var refused error
	for i := 0; i < 100 && refused == nil; i++ {
		_, refused = js.Publish(ctx, "s", make([]byte, 64<<10))
	}
	var apiErr *jetstream.APIError
	if !errors.As(refused, &apiErr) {
		t.Fatalf("publishing 6.4 MB to a 1 MB store: %v, want the server's refusal", refused)
	}
	select {
	case e := <-got:
		if !e.Full || !strings.Contains(e.Msg, "resource limits exceeded") {
			t.Fatalf("storeWatch heard %v, want a report of no room", e)
		}
	default:
		t.Fatal("storeWatch heard nothing of the refusal")
	}
}
