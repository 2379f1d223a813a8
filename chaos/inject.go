package chaos

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Record is what happened to one injected fault.
type Record struct {
	Kind      Kind
	Target    string        // the process killed, e.g. coordinator-a.3
	At        time.Time     // when it was killed
	Step      uint64        // newest committed step at the kill
	Down      time.Duration // how long it stayed dead
	Recovered bool
	// Recovery is, for S3Outage, the time from versitygw's restart to the
	// next checkpoint saved; for the other kinds, the time from the kill to
	// the first commit of a step never committed before (for NATS, before
	// the server was back).
	Recovery time.Duration
	Note     string

	restarted time.Time // when the store came back (S3Outage)
}

// settle measures the recoveries that were not awaited: an S3Outage
// recovered when a checkpoint was saved after the store came back.
func (c *cluster) settle(recs []Record) {
	for i := range recs {
		r := &recs[i]
		if r.Kind != S3Outage || r.restarted.IsZero() {
			continue
		}
		if at, ok := c.tl.checkpointAfter(r.restarted); ok {
			r.Recovered, r.Recovery = true, at.Sub(r.restarted)
		} else {
			r.Note = joinNote(r.Note, "no checkpoint saved after the store came back")
		}
	}
}

// pause lets d pass while supervising; it paces the fault plan, it never
// stands in for waiting on an event.
func (c *cluster) pause(ctx context.Context, d time.Duration) error {
	until := time.Now().Add(d)
	return waitFor(ctx, d+time.Minute, "pause", c.tick, func() error {
		if time.Now().Before(until) {
			return errors.New("pausing")
		}
		return nil
	})
}

// inject performs f, brings the node back, and waits for the run to
// recover.
//
// outageSteps bounds a store outage in steps: past them it ends whether or
// not a save has failed yet (the saver may be backing off from an earlier
// outage), so that one outage does not use up the steps the faults after it
// need.
func (c *cluster) inject(ctx context.Context, f fault, outageSteps uint64) (Record, error) {
	r := Record{Kind: f.Kind, Step: c.tl.progress(), Down: f.Down}
	after := r.Step // recovered once a step above this one is committed
	if f.Kind == CheckpointDamage {
		note, err := c.damageNewestCheckpoint(ctx)
		if err != nil {
			return r, err
		}
		r.Note = note
	}
	switch f.Kind {
	case WorkerKill, CoordinatorKill, CheckpointDamage:
		// The slot comes back after f.Down in the background (see tick):
		// a dead worker or coordinator does not stop the others, so the
		// plan goes on meanwhile and faults may overlap.
		var n *node
		err := waitFor(ctx, c.o.Recovery, "a live "+f.Kind.String()+" to kill", c.tick, func() error {
			if n = c.victim(f); n == nil {
				return errors.New("none is running")
			}
			return nil
		})
		if err != nil {
			return r, err
		}
		r.Step, r.Target, r.At = c.tl.progress(), n.incName(n.inc-1), time.Now()
		after = r.Step
		n.down, n.restartAt = true, r.At.Add(f.Down)
		if err := n.proc.kill(10 * time.Second); err != nil {
			return r, err
		}
		c.logf("fault %s: killed %s at step %d for %v", f.Kind, r.Target, r.Step, f.Down.Round(time.Millisecond))
	case NATSRestart:
		// A cluster keeps its quorum only while one node at most is away:
		// every node serves and has caught up before the next is killed.
		for _, other := range c.nats {
			if err := waitFor(ctx, time.Minute, other.name+" ready before the next NATS fault", c.tick, other.ready); err != nil {
				return r, err
			}
		}
		r.Step = c.tl.progress()
		nd := c.nats[f.Pick%uint64(len(c.nats))]
		r.Target, r.At = fmt.Sprintf("%s.%d", nd.name, nd.restarts-1), time.Now()
		if err := c.killServer(nd.proc); err != nil {
			return r, err
		}
		if len(c.nats) == 1 {
			c.outageBegins("nats")
		}
		c.logf("fault %s: killed %s at step %d for %v", f.Kind, r.Target, r.Step, f.Down.Round(time.Millisecond))
		if err := c.pause(ctx, f.Down); err != nil {
			return r, err
		}
		if err := c.startNATS(nd); err != nil {
			return r, err
		}
		if len(c.nats) == 1 {
			if err := waitFor(ctx, time.Minute, nd.name+" ready after restart", c.tick, nd.ready); err != nil {
				return r, err
			}
			c.outageEnds()
		}
		// A node of a cluster catches up on its streams while the run goes
		// on, on the other two: the plan does not wait for it (a run of
		// fast steps could end meanwhile, before the faults after this
		// one), only the next NATS fault does (above).
		//
		// A step whose gradients were read before the kill may still be
		// committed while the server is down; recovery is the first step
		// after those.
		after = c.tl.progress()
	case S3Outage:
		// The store stays down f.Down and at least until a coordinator
		// has failed to save a checkpoint, so every outage is felt —
		// unless the run gets outageSteps past the kill first.
		r.Target, r.At = fmt.Sprintf("s3.%d", c.s3.restarts-1), time.Now()
		if err := c.killServer(c.s3.proc); err != nil {
			return r, err
		}
		c.outageBegins("s3")
		c.logf("fault %s: killed %s at step %d for %v or until a save fails", f.Kind, r.Target, r.Step, f.Down.Round(time.Millisecond))
		until := r.At.Add(f.Down)
		var failed bool
		err := waitFor(ctx, f.Down+c.o.Recovery, "a failed checkpoint save during the outage", c.tick, func() error {
			if time.Now().Before(until) {
				return errors.New("not down long enough yet")
			}
			if _, failed = c.tl.saveFailedAfter(r.At); failed || c.tl.progress() >= r.Step+outageSteps {
				return nil
			}
			return errors.New("no save failed yet")
		})
		if err != nil || !failed {
			r.Note = "no save failed while the store was down"
		}
		r.Down = time.Since(r.At)
		r.Note = joinNote(fmt.Sprintf("%d steps committed during the outage", c.tl.progress()-r.Step), r.Note)
		if err := c.startS3(ctx); err != nil {
			return r, err
		}
		c.outageEnds()
		// Training went on during the outage, so waiting here for the
		// backlog to be saved would only use up steps of the run: the plan
		// goes on and settle measures the recovery at the end.
		r.restarted = time.Now()
		c.logf("fault %s: %s back", f.Kind, r.Target)
		return r, nil
	}
	err := waitFor(ctx, c.o.Recovery, fmt.Sprintf("recovery from %s kill of %s", f.Kind, r.Target), c.tick, func() error {
		if c.finished {
			return nil
		}
		if err := c.crashLooping(); err != nil {
			return err
		}
		if _, ok := c.tl.firstAbove(after); ok {
			return nil
		}
		return fmt.Errorf("no step above %d committed", after)
	})
	if err != nil {
		r.Note = joinNote(r.Note, err.Error())
		return r, nil
	}
	r.Recovered = true
	at, ok := c.tl.firstAbove(after)
	r.Recovery = at.Sub(r.At)
	if !ok { // the run finished first
		r.Recovery = c.finishedAt.Sub(r.At)
		r.Note = joinNote(r.Note, "run finished before a further step")
	}
	c.logf("fault %s: recovered in %v", f.Kind, r.Recovery.Round(time.Millisecond))
	return r, nil
}

// victim picks the process a worker or coordinator fault kills: the leading
// coordinator (the one that logged the newest commit) when it still runs,
// otherwise a live one chosen by the plan.
func (c *cluster) victim(f fault) *node {
	nodes := c.workers
	if f.Kind == CoordinatorKill || f.Kind == CheckpointDamage {
		nodes = c.coords
		name, inc := c.tl.leading()
		for _, n := range nodes {
			if n.name == name && n.inc-1 == inc && n.alive() {
				return n
			}
		}
	}
	var live []*node
	for _, n := range nodes {
		if n.alive() && !n.down {
			live = append(live, n)
		}
	}
	if len(live) == 0 {
		return nil
	}
	return live[f.Pick%uint64(len(live))]
}

func joinNote(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "; " + b
}
