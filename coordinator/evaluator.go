package coordinator

import (
	"context"
	"sync"
	"sync/atomic"
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
// It takes no rest while another evaluation waits, nor once the run is done
// (rush).
type evaluations struct {
	net  *model.Network
	test *model.Split
	hook func(epoch int) // Hooks.Evaluated, or nil

	mu      sync.Mutex
	queue   []*EvalRequest
	wake    chan struct{}
	results chan evalResult // read by the node's loop
	hurry   atomic.Bool     // no more resting (rush)
}

// evalResult is a finished evaluation.
type evalResult struct {
	epoch int
	stats model.Stats
	err   error
}

// evalResults is how many finished evaluations may wait for the node's
// loop while the next one runs.
const evalResults = 4

// evalRest is how long the evaluation rests after each chunk, as a multiple
// of the chunk's time: 2 leaves it a third of a core.
const evalRest = 2

func newEvaluations(net *model.Network, test *model.Split, hook func(epoch int)) *evaluations {
	return &evaluations{net: net, test: test, hook: hook, wake: make(chan struct{}, 1), results: make(chan evalResult, evalResults)}
}

// behind reports whether another evaluation waits: the one running then
// takes no rest, so evaluations never fall further behind than their
// compute.
func (e *evaluations) behind() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.queue) > 0
}

// rush makes the evaluations rest no more: the node has nothing else to do
// (its run is done) and waits for them.
func (e *evaluations) rush() { e.hurry.Store(true) }

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
		res.stats, res.err = e.net.EvaluateWith(r.Weights, e.test.X, e.test.Y, func() error {
			if !e.behind() && !e.hurry.Load() {
				select { // pacing, not synchronization
				case <-ctx.Done():
				case <-time.After(evalRest * time.Since(last)):
				}
			}
			last = time.Now()
			return ctx.Err() // a stopping node does not wait for the rest
		})
		if ctx.Err() != nil {
			return
		}
		if e.hook != nil {
			e.hook(r.Epoch)
		}
		if ctx.Err() != nil {
			return // a stopping node takes in no more evaluations
		}
		select {
		case e.results <- res:
		case <-ctx.Done():
			return
		}
	}
}
