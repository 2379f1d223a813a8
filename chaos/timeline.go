package chaos

import (
	"sync"
	"time"
)

// timeline is what the harness learns from coordinator output as it
// happens: when each step was first committed, when checkpoints were
// saved, and which coordinator leads. Output goroutines write it; the
// driver reads it.
type timeline struct {
	mu           sync.Mutex
	maxStep      uint64
	stepAt       map[uint64]time.Time // first commit of each step
	checkpoints  []time.Time
	saveFailures []time.Time // warnings that a checkpoint could not be saved
	leader       string      // slot of the coordinator that logged the newest commit
	leaderInc    int
	errs         []string
}

func newTimeline() *timeline { return &timeline{stepAt: map[uint64]time.Time{}} }

// line takes one output line of incarnation inc of coordinator slot name.
func (t *timeline) line(name string, inc int, line string, at time.Time) {
	if isSaveFailedLine(line) {
		t.mu.Lock()
		t.saveFailures = append(t.saveFailures, at)
		t.mu.Unlock()
		return
	}
	if isCheckpointLine(line) {
		t.mu.Lock()
		t.checkpoints = append(t.checkpoints, at)
		t.mu.Unlock()
		return
	}
	c, ok, err := parseCommit(line)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.errs = append(t.errs, err.Error())
		return
	}
	if _, seen := t.stepAt[c.Step]; !seen {
		t.stepAt[c.Step] = at
	}
	t.maxStep = max(t.maxStep, c.Step)
	t.leader, t.leaderInc = name, inc
}

// progress is the newest step any coordinator committed.
func (t *timeline) progress() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxStep
}

// firstAbove returns when a step above step was first committed.
func (t *timeline) firstAbove(step uint64) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.stepAt[step+1]
	return at, ok
}

// checkpointAfter returns when the first checkpoint after at was saved.
func (t *timeline) checkpointAfter(at time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return firstAfter(t.checkpoints, at)
}

// saveFailedAfter returns when a checkpoint save first failed after at.
func (t *timeline) saveFailedAfter(at time.Time) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return firstAfter(t.saveFailures, at)
}

// firstAfter returns the first of times (in the order they were logged)
// that is after at.
func firstAfter(times []time.Time, at time.Time) (time.Time, bool) {
	for _, x := range times {
		if x.After(at) {
			return x, true
		}
	}
	return time.Time{}, false
}

// leading returns the coordinator slot and incarnation that logged the
// newest commit.
func (t *timeline) leading() (string, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.leader, t.leaderInc
}

// stepTime is the mean time between the first and the last commit of steps
// 1..last, or 0 when unknown.
func (t *timeline) stepTime(last uint64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	first, ok1 := t.stepAt[1]
	end, ok2 := t.stepAt[last]
	if !ok1 || !ok2 || last < 2 {
		return 0
	}
	return end.Sub(first) / time.Duration(last-1)
}
