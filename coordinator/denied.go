package coordinator

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// ErrDenied is what a run ends with when the NATS user the coordinator
// connects as may not publish the run's tasks or commit records: the
// server refuses every attempt, so a retry would only repeat the refusal.
var ErrDenied = errors.New("coordinator: the NATS user may not publish")

// publishDenied reports a publish of tasks or commit, which got no ack,
// that the server refused for want of permission: it says so on the
// connection (its last error names the subject), not to the publish, which
// only waits in vain. nil when it did not.
func publishDenied(nc *nats.Conn, commit *protocol.Params, tasks []protocol.Task) error {
	last := nc.LastError()
	if !errors.Is(last, nats.ErrPermissionViolation) {
		return nil
	}
	var subjects []string
	if commit != nil {
		subjects = append(subjects, protocol.ParamsSubject(commit.Run, commit.Step))
	}
	if len(tasks) > 0 {
		subjects = append(subjects, protocol.TasksSubject(tasks[0].Run))
	}
	for _, s := range subjects {
		if strings.Contains(last.Error(), `"`+s+`"`) {
			return fmt.Errorf("%w to %s (the server said: %v); allow it in the user's permissions and start the run again", ErrDenied, s, last)
		}
	}
	return nil
}
