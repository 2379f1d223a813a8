package protocol

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream API's codes for a store without room (nats-server's
// errors.json). A server past its own store limit (by default most of the
// room its disk had when it started) refuses every message, whatever its
// size, with insufficient resources; an account or tier past its quota
// refuses the messages that would take it past, so small ones may still
// go through. The last two come from creating or updating a stream.
const (
	jsAccountResourcesExceeded jetstream.ErrorCode = 10002
	jsInsufficientResources    jetstream.ErrorCode = 10023
	jsMemoryResourcesExceeded  jetstream.ErrorCode = 10028
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// NoRoom reports whether err is a NATS server refusing to store for want of
// room in its store or in the account's quota.
func NoRoom(err error) bool {
	return NoRoomError(err) != nil
}

// NoRoomError returns the server's refusal in err for want of room, or nil.
func NoRoomError(err error) *jetstream.APIError {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return nil
	}
	switch apiErr.ErrorCode {
	case jsAccountResourcesExceeded, jsInsufficientResources, jsMemoryResourcesExceeded, jsStorageResourcesExceeded:
		return apiErr
	}
	return nil
}
