package coordinator

import (
	"slices"
	"time"
)

// stragglers decides when the missing shards of a step are late enough to
// hand out again: after several times the median step time of the recent
// past. The duplicate task gets a fresh message id; whichever gradient
// arrives first is used and the other is dropped as stale, so the weights
// do not change. This catches a dead or slow worker long before the
// consumer's ack wait would redeliver its task.
//
// A re-dispatch most likely means a worker died, holding tasks of the steps
// after the current one too (a hand's worth, spread over the steps out).
// Those steps are hot: their missing shards go out again after several
// times the median step time with a lower floor, stragglerHotFloor. With
// the same floor for them, a killed worker held a run up for about 0.37 s
// a step over three steps under the chaos harness.
type stragglers struct {
	recent  []time.Duration // ring of recent step durations
	next    int
	started time.Time // when the current step was published
	step    uint64
	sent    bool   // the current step's stragglers were re-dispatched
	hotTo   uint64 // the last step whose tasks were out at the last re-dispatch
	timer   *time.Timer
}

const (
	stragglerWindow = 32
	stragglerFactor = 4
	stragglerFloor  = 250 * time.Millisecond
	stragglerWarmup = 8 // steps measured before the median is used
	// stragglerCold is the deadline before that: a coordinator that just
	// took over a run (or started it) has no step times yet, and a worker
	// that died holding tasks of the next steps would otherwise hold the
	// run up for the consumer's ack wait once per step.
	stragglerCold = 2 * time.Second
	// stragglerHotFloor is the floor of the steps after a re-dispatch.
	stragglerHotFloor = 50 * time.Millisecond
)

func newStragglers() *stragglers {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &stragglers{timer: t}
}

// published records that step's tasks went out at now and arms the timer.
func (s *stragglers) published(step uint64, now time.Time) {
	if step != s.step || s.started.IsZero() {
		s.step, s.started, s.sent = step, now, false
	}
	if !s.sent {
		s.timer.Reset(max(0, s.wait()-now.Sub(s.started)))
	}
}

// committed records the duration of the step that just finished.
func (s *stragglers) committed(now time.Time) {
	s.timer.Stop()
	if s.started.IsZero() {
		return
	}
	d := now.Sub(s.started)
	if len(s.recent) < stragglerWindow {
		s.recent = append(s.recent, d)
	} else {
		s.recent[s.next] = d
		s.next = (s.next + 1) % stragglerWindow
	}
	s.started = time.Time{}
}

// due reports whether the current step's missing shards should go out
// again now; it says yes once per step. outTo is the last step whose tasks
// are out: the steps up to it are hot.
func (s *stragglers) due(outTo uint64) bool {
	if s.sent || s.started.IsZero() {
		return false
	}
	s.sent = true
	s.hotTo = max(s.hotTo, outTo)
	return true
}

// deadline is how long a step's shards may take before they are handed out
// again, on the run's recent pace.
func (s *stragglers) deadline() time.Duration {
	if len(s.recent) < stragglerWarmup {
		return stragglerCold
	}
	return max(stragglerFactor*s.median(), stragglerFloor)
}

// wait is the deadline of the current step: lower when it is hot. A
// coordinator that has not measured its pace yet waits stragglerFloor for
// a hot step rather than stragglerCold: a killed worker held a run up for
// 2 s a step over three steps after a coordinator took over.
func (s *stragglers) wait() time.Duration {
	switch {
	case s.hotTo == 0 || s.step > s.hotTo: // no re-dispatch yet, or past its steps
		return s.deadline()
	case len(s.recent) < stragglerWarmup:
		return stragglerFloor
	default:
		return max(stragglerFactor*s.median(), stragglerHotFloor)
	}
}

func (s *stragglers) median() time.Duration {
	sorted := slices.Clone(s.recent)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
