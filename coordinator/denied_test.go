package coordinator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestARunWhoseTasksTheUserMayNotPublishEnds: a NATS user that may do
// everything but publish tasks (the server refuses each one, and says so
// only on the connection) ends the run at once with ErrDenied naming the
// subject, rather than retrying for ever.
func TestARunWhoseTasksTheUserMayNotPublishEnds(t *testing.T) {
	srv := runNATSOpts(t, server.Options{Port: -1, StoreDir: t.TempDir(), Users: []*server.User{{
		Username: "trainer", Password: "secret",
		Permissions: &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"jt.tasks.>"}}},
	}}})
	nc := connect(t, srv.ClientURL(), nats.UserInfo("trainer", "secret"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := Train(ctx, nc, openStore(t, ""), Options{Config: smallConfig(t), Log: quietLog(), AckWait: 2 * time.Second})
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("Train returned %v after %v, want ErrDenied", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), `jt.tasks.`) {
		t.Fatalf("the error does not name the subject refused: %v", err)
	}
	t.Logf("ended after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
