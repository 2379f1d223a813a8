package worker

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// activity is what a worker has done so far, for its periodic report
// (Options.ReportEvery).
type activity struct {
	tasks uint64        // tasks completed
	again uint64        // tasks received that had been delivered before
	idle  time.Duration // waiting for tasks
	run   string        // of the newest task completed
	step  uint64
}

// lastTask is the newest task a worker completed.
type lastTask struct {
	mu   sync.Mutex
	run  string
	step uint64
}

func (l *lastTask) set(run string, step uint64) {
	l.mu.Lock()
	l.run, l.step = run, step
	l.mu.Unlock()
}

func (w *Worker) activity() activity {
	w.last.mu.Lock()
	defer w.last.mu.Unlock()
	return activity{tasks: w.done.Load(), again: w.again.Load(), idle: w.Idle(), run: w.last.run, step: w.last.step}
}

// report logs, every every until ctx ends, what the worker did since the
// report before: a user who starts a worker sees it take tasks (and how
// many came again, redelivered), and one that has nothing to do says so
// once.
func (w *Worker) report(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev, quiet := w.activity(), true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := w.activity()
		quiet = w.logActivity(prev, cur, every, quiet)
		prev = cur
	}
}

// logActivity logs what the worker did between prev and cur, span apart,
// and returns whether it did nothing: a quiet spell after work is logged
// when it begins, not at every report.
func (w *Worker) logActivity(prev, cur activity, span time.Duration, quiet bool) bool {
	n := cur.tasks - prev.tasks
	if n == 0 {
		if !quiet {
			w.opts.Log.Info("worker: no tasks", "worker", w.opts.ID, "for", span)
		}
		return true
	}
	waiting := min(float64(cur.idle-prev.idle)/float64(span), 1)
	attrs := []any{"worker", w.opts.ID, "shards", n, "in", span, "run", cur.run, "step", cur.step, "waiting", fmt.Sprintf("%.0f%%", 100*waiting)}
	if again := cur.again - prev.again; again > 0 {
		// Tasks of a worker that died or gave them back, or held past the
		// ack wait: computed again, if they had been computed.
		attrs = append(attrs, "redelivered", again)
	}
	w.opts.Log.Info("worker: shards computed", attrs...)
	return false
}
