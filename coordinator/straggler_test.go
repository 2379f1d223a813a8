package coordinator

import (
	"testing"
	"time"
)

// TestStepsAfterARedispatchAreHot: once a step's stragglers went out (a
// worker most likely died, holding tasks of the steps after it too), the
// steps whose tasks were out then wait for their shards stragglerHotFloor
// rather than stragglerFloor before handing them out again; the steps
// after those, and a run that has not measured its pace yet, do not.
func TestStepsAfterARedispatchAreHot(t *testing.T) {
	if got := newStragglers().wait(); got != stragglerCold {
		t.Fatalf("before any step: wait %v, want %v", got, stragglerCold)
	}
	s, now, step := paced(5 * time.Millisecond)
	s.published(step, now)
	if got := s.wait(); got != stragglerFloor {
		t.Fatalf("a run at 5 ms a step: wait %v, want the floor %v", got, stragglerFloor)
	}
	if !s.due(step + 2) {
		t.Fatal("the step's stragglers were not due")
	}
	if s.due(step + 2) {
		t.Fatal("a step's stragglers went out twice")
	}
	s.committed(now.Add(stragglerFloor))
	for hot := step + 1; hot <= step+2; hot++ {
		s.published(hot, now)
		if got := s.wait(); got != stragglerHotFloor {
			t.Fatalf("step %d, out at the re-dispatch: wait %v, want %v", hot, got, stragglerHotFloor)
		}
		now = now.Add(5 * time.Millisecond)
		s.committed(now)
	}
	s.published(step+3, now)
	if got := s.wait(); got != stragglerFloor {
		t.Fatalf("step %d, after the hot ones: wait %v, want %v", step+3, got, stragglerFloor)
	}
	if got := s.deadline(); got != stragglerFloor {
		t.Fatalf("the pace-based deadline (the no-room guard's grace): %v", got)
	}
}

// TestHotStepsKeepTheirPace: a hot step of a slow run still waits several
// of its step times, not the hot floor.
func TestHotStepsKeepTheirPace(t *testing.T) {
	s, now, step := paced(100 * time.Millisecond)
	s.published(step, now)
	s.due(step + 1)
	s.published(step+1, now)
	if got, want := s.wait(), stragglerFactor*100*time.Millisecond; got != want {
		t.Fatalf("hot step of a 100 ms run: wait %v, want %v", got, want)
	}
}

// TestHotStepsOfAColdCoordinator: a coordinator that just took over (no
// pace measured) waits stragglerCold for a step's shards, but only
// stragglerFloor for the steps out at a re-dispatch.
func TestHotStepsOfAColdCoordinator(t *testing.T) {
	s := newStragglers()
	now := time.Unix(0, 0)
	s.published(40, now)
	if got := s.wait(); got != stragglerCold {
		t.Fatalf("cold: wait %v, want %v", got, stragglerCold)
	}
	s.due(42)
	s.committed(now.Add(stragglerCold))
	s.published(41, now.Add(stragglerCold))
	if got := s.wait(); got != stragglerFloor {
		t.Fatalf("cold and hot: wait %v, want %v", got, stragglerFloor)
	}
}

// paced is stragglers that have timed stragglerWarmup steps of d each, at
// now, with step the next.
func paced(d time.Duration) (s *stragglers, now time.Time, step uint64) {
	s, now = newStragglers(), time.Unix(0, 0)
	for step = 1; step <= stragglerWarmup; step++ {
		s.published(step, now)
		now = now.Add(d)
		s.committed(now)
	}
	return s, now, step
}
