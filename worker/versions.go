package worker

import (
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// versions keeps the newest weights versions received by subscription, a
// few per run, for the task loop to use without a fetch.
type versions struct {
	mu   sync.Mutex
	runs map[string][]*protocol.Params // newest last
}

const versionsKept = 2

func newVersions() *versions { return &versions{runs: map[string][]*protocol.Params{}} }

// receive is the subscription handler. Malformed messages are ignored here:
// the task loop fetches from the stream and reports what it finds there.
func (v *versions) receive(msg *nats.Msg) {
	p := new(protocol.Params)
	if p.UnmarshalBinary(msg.Data) != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	list := append(v.runs[p.Run], p)
	if len(list) > versionsKept {
		list = list[len(list)-versionsKept:]
	}
	v.runs[p.Run] = list
}

// get returns version step of run if it has arrived.
func (v *versions) get(run string, step uint64) *protocol.Params {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.runs[run] {
		if p.Step == step {
			return p
		}
	}
	return nil
}
