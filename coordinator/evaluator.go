package coordinator

import (
	"context"
	"sync"
	"time"

	"github.com/jettrain/jettrain/model"
)

// evaluations runs the epochs' evaluations a node's machine hands out, one
// at a time in epoch order, on a goroutine of its own, while the node
// commits on. It paces itself: after each chunk of the test set it rests
// evalRest times as long as the chunk took, so on a machine whose cores
// the workers and the broker keep busy the evaluation takes the time left
// over rather than a worker's (with the evaluation done inside the commit,
// the default run's lone worker lost 2.3% of its speed to it on two cores).
type evaluations struct {
	net  *model.Network
	test *model.Split
	hook func(epoch int) // Hooks.Evaluated, or nil

	mu      sync.Mutex
	queue   []*EvalRequest
	wake    chan struct{}
	results chan evalResult // read by the node's loop
}

// evalResult is a finished evaluation.
type evalResult struct {
	epoch int
	stats model.Stats
	err   error
}

// evalRest is how long the evaluation rests after each chunk, as a multiple
// of the chunk's time: 2 leaves it a third of a core.
const evalRest = 2

func newEvaluations(net *model.Network, test *model.Split, hook func(epoch int)) *evaluations {
	return &evaluations{net: net, test: test, hook: hook, wake: make(chan struct{}, 1), results: make(chan evalResult)}
}

// submit queues r; it never blocks.
func (e *evaluations) submit(r *EvalRequest) {
	e.mu.Lock()
	e.queue = append(e.queue, r)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// loop evaluates what is submitted until ctx ends.
func (e *evaluations) loop(ctx context.Context) {
	for {
		e.mu.Lock()
		var r *EvalRequest
		if len(e.queue) > 0 {
			r = e.queue[0]
			e.queue[0] = nil
			e.queue = e.queue[1:]
		}
		e.mu.Unlock()
		if r == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
				continue
			}
		}
		res := evalResult{epoch: r.Epoch}
		last := time.Now()
		res.stats, res.err = e.net.EvaluateWith(r.Weights, e.test.X, e.test.Y, func() {
			rest := evalRest * time.Since(last)
			select { // pacing, not synchronization: a stopping node does not wait for it
			case <-ctx.Done():
			case <-time.After(rest):
			}
			last = time.Now()
		})
		if e.hook != nil {
			e.hook(r.Epoch)
		}
		select {
		case e.results <- res:
		case <-ctx.Done():
			return
		}
	}
}
