package coordinator

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// A broker that is electing a leader answers 503; the coordinator rides
// that out. Errors about the run's inputs end the run.
func TestTransientErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("coordinator: reading the grads stream: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}), true},
		{fmt.Errorf("lease: %w", jetstream.ErrNoStreamResponse), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}, false},
		{fmt.Errorf("%w: step 3 was committed with other weights", ErrFenced), false},
		{errors.New("evaluating epoch 2: shape mismatch"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
