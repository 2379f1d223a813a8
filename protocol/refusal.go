package protocol

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Refusal is a worker telling the coordinators that the broker refused to
// store its gradient of a run for want of room. It travels on
// RefusalSubject, over core NATS: a store without room could not keep it.
// A coordinator counts it as a refusal of its own (an account's quota may
// refuse the workers' large gradients while it still takes the
// coordinator's small tasks and commit records), so the run stops with
// one clear line instead of waiting while only the workers warn.
type Refusal struct {
	Run         string
	Worker      string
	Status      uint16 // the API error's status code (JetStream's Code)
	ErrorCode   uint16 // the API error's code (JetStream's ErrorCode), one NoRoomError knows
	Description string // the API error's description
}

// MaxDescriptionLen bounds a refusal's description.
const MaxDescriptionLen = 1024

// MarshalBinary encodes f.
func (f *Refusal) MarshalBinary() ([]byte, error) {
	w := newWriter(KindRefusal, 16+len(f.Run)+len(f.Worker)+len(f.Description))
	w.str(f.Run)
	w.str(f.Worker)
	w.u16(f.Status)
	w.u16(f.ErrorCode)
	w.str(f.Description)
	return w.b, nil
}

// UnmarshalBinary decodes and validates a refusal.
func (f *Refusal) UnmarshalBinary(b []byte) error {
	r := newReader(b, KindRefusal)
	f.Run = r.str("run", MaxRunLen)
	f.Worker = r.str("worker", MaxWorkerLen)
	f.Status = r.u16("status")
	f.ErrorCode = r.u16("error code")
	f.Description = r.str("description", MaxDescriptionLen)
	if err := r.end(); err != nil {
		return err
	}
	switch {
	case !ValidRun(f.Run):
		return malformed("refusal of run %q", f.Run)
	case f.Worker == "":
		return malformed("refusal without worker id")
	}
	return nil
}

// RefusalOf is worker's report of err, the broker's answer to a gradient of
// run, if err is a refusal for want of room (NoRoomError).
func RefusalOf(run, worker string, err error) (*Refusal, bool) {
	apiErr := NoRoomError(err)
	if apiErr == nil {
		return nil, false
	}
	desc := apiErr.Description
	if len(desc) > MaxDescriptionLen {
		desc = strings.ToValidUTF8(desc[:MaxDescriptionLen], "")
	}
	return &Refusal{Run: run, Worker: worker, Status: uint16(apiErr.Code), ErrorCode: uint16(apiErr.ErrorCode), Description: desc}, true
}

// Err is the broker's refusal f reports, naming the worker it refused.
func (f *Refusal) Err() error {
	return fmt.Errorf("the gradients of worker %s: %w", f.Worker,
		&jetstream.APIError{Code: int(f.Status), ErrorCode: jetstream.ErrorCode(f.ErrorCode), Description: f.Description})
}
