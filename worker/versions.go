package worker

import (
	"slices"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// versions keeps the newest commit records received by subscription, a
// few per run for the few runs heard from last: the task loop checks its
// replica's weights check against them, and knows a committed step without a
// fetch.
type versions struct {
	mu    sync.Mutex
	runs  map[string][]*protocol.Params // newest last
	heard []string                      // runs in runs, the one heard from last at the end
}

const (
	versionsKept = 2 // per run
	runsKept     = 4 // a worker serving many runs over its life keeps only the recent ones
)

func newVersions() *versions {
	return &versions{runs: map[string][]*protocol.Params{}}
}

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
	v.heard = append(slices.DeleteFunc(v.heard, func(r string) bool { return r == p.Run }), p.Run)
	if len(v.heard) > runsKept {
		delete(v.runs, v.heard[0])
		v.heard = slices.Delete(v.heard, 0, 1)
	}
}

// get returns the commit record of version step of run if it has arrived.
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
