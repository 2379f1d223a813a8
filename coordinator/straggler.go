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
type stragglers struct {
	recent  []time.Duration // ring of recent step durations
	next    int
	started time.Time // when the current step was published
	step    uint64
	sent    bool // the current step's stragglers were re-dispatched
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
		s.timer.Reset(max(0, s.deadline()-now.Sub(s.started)))
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
// again now; it says yes once per step.
func (s *stragglers) due() bool {
	if s.sent || s.started.IsZero() {
		return false
	}
	s.sent = true
	return true
}

func (s *stragglers) deadline() time.Duration {
	if len(s.recent) < stragglerWarmup {
		return stragglerCold
	}
	sorted := slices.Clone(s.recent)
	slices.Sort(sorted)
	return max(stragglerFactor*sorted[len(sorted)/2], stragglerFloor)
}
