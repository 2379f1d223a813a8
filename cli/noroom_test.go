package cli

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jettrain/jettrain/coordinator"
	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/protocol"
)

// `coordinator start` against a NATS server whose store runs out of room
// stops by itself with one line that names the server and says how the run
// resumes, where its publishes would otherwise be retried without end.
func TestNoRoomOnTheNATSServerIsOneClearError(t *testing.T) {
	s := startNATSServer(t, 1<<20)
	// 1 MB holds the gradients of a few dozen steps of this run, and no
	// checkpoint comes to trim them.
	args := []string{"start", "--nats", s.ClientURL(), "--workers", "1", "--quiet", "--data-dir", t.TempDir(), "--s3-listen", freeAddr(t),
		"--set", "dataset=synthetic", "--set", "hidden=[32]", "--set", "batch_size=64", "--set", "epochs=1", "--set", "checkpoint_every=100000"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stderr, err := execute(t, ctx, args...)
	if ctx.Err() != nil {
		t.Fatalf("start did not stop on its own: %v\n%s", err, stderr)
	}
	if !errors.Is(err, coordinator.ErrNoRoom) {
		t.Fatalf("start on a server without room: %v, want %v\n%s", err, coordinator.ErrNoRoom, stderr)
	}
	msg := err.Error()
	for _, want := range []string{"insufficient resources", "make room in the store of the NATS server at " + s.ClientURL(), "resumes from its newest checkpoint"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q is not one line", msg)
	}
}

// startNATSServer runs a NATS JetStream server of the test's own (an
// external one to `coordinator start`) on a random port, with the room of
// its store capped at maxStore bytes (0: the server's default).
func startNATSServer(t *testing.T, maxStore int64) *server.Server {
	t.Helper()
	return natstest.Start(t, server.Options{JetStream: true, StoreDir: t.TempDir(), JetStreamMaxStore: maxStore, MaxPayload: protocol.MaxPayload})
}
