package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// versions keeps the newest weights versions received by subscription, a
// few per run for the few runs heard from last, for the task loop to use
// without a fetch.
type versions struct {
	mu      sync.Mutex
	runs    map[string][]*protocol.Params // newest last
	heard   []string                      // runs in runs, the one heard from last at the end
	arrived chan struct{}                 // closed and replaced on every arrival
}

const (
	versionsKept = 2 // per run
	runsKept     = 4 // a worker serving many runs over its life keeps only the recent ones
)

func newVersions() *versions {
	return &versions{runs: map[string][]*protocol.Params{}, arrived: make(chan struct{})}
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
	close(v.arrived)
	v.arrived = make(chan struct{})
}

// get returns version step of run if it has arrived.
func (v *versions) get(run string, step uint64) *protocol.Params {
	p, _ := v.lookup(run, step)
	return p
}

func (v *versions) lookup(run string, step uint64) (*protocol.Params, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range v.runs[run] {
		if p.Step == step {
			return p, nil
		}
	}
	return nil, v.arrived
}

// wait returns version step of run once it arrives, or nil after d: a task
// often reaches a worker a moment before the weights it names.
func (v *versions) wait(ctx context.Context, run string, step uint64, d time.Duration) *protocol.Params {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		p, arrived := v.lookup(run, step)
		if p != nil {
			return p
		}
		select {
		case <-arrived:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
