package natsconn

import (
	"errors"
	"strings"

	"github.com/nats-io/nats.go"
)

// PublishDenied returns the server's refusal of a publish to a subject
// starting with prefix, when that is the last error nc has seen, and nil
// otherwise. A server refuses a publish its user may not make on the
// connection (an asynchronous -ERR), not to the publish: a JetStream
// publish then waits for an ack that never comes, and only the
// connection's last error tells why.
func PublishDenied(nc *nats.Conn, prefix string) error {
	last := nc.LastError()
	if errors.Is(last, nats.ErrPermissionViolation) && strings.Contains(last.Error(), `Publish to "`+prefix) {
		return last
	}
	return nil
}
