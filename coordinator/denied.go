package coordinator

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
)

// ErrDenied is what a run ends with when the NATS user the coordinator
// connects as may not publish the run's tasks or commit records: the
// server refuses every attempt, so a retry would only repeat the refusal.
var ErrDenied = errors.New("coordinator: the NATS user may not publish")

// publishDenied reports a publish of tasks or commit, which got no ack,
// that the server refused for want of permission (natsconn.PublishDenied);
// nil when it did not.
func publishDenied(nc *nats.Conn, commit *protocol.Params, tasks []protocol.Task) error {
	var subjects []string
	if commit != nil {
		subjects = append(subjects, protocol.ParamsSubject(commit.Run, commit.Step))
	}
	if len(tasks) > 0 {
		subjects = append(subjects, protocol.TasksSubject(tasks[0].Run))
	}
	for _, s := range subjects {
		if last := natsconn.PublishDenied(nc, s); last != nil {
			return fmt.Errorf("%w to %s (the server said: %v); allow it in the user's permissions and start the run again", ErrDenied, s, last)
		}
	}
	return nil
}
