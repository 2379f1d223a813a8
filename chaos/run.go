package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jettrain/jettrain/objstore"
)

// outcome is what one run (fault-free or not) left behind.
type outcome struct {
	run          string
	manifest     objstore.Manifest
	history      []objstore.HistoryEntry
	incarnations []Incarnation
	records      []Record
	unexpected   []string
	refused      []string
	violations   []string
	took         time.Duration
	stepTime     time.Duration // mean time per step
}

// runOnce starts a fresh cluster under dir, injects faults, waits until a
// coordinator finishes the run, reads the result from the store and the
// commits from the coordinator logs, and stops every process.
//
// total is the run's step count, known from the fault-free run (0 there).
func runOnce(ctx context.Context, o *Options, dir string, faults []fault, total uint64) (*outcome, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := newCluster(o, dir)
	if err != nil {
		return nil, err
	}
	out := &outcome{}
	start := time.Now()
	defer func() {
		out.violations = append(out.violations, c.leftovers()...)
	}()
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	c.logf("started %d NATS, versitygw, %d coordinators, %d workers under %s", len(c.nats), len(c.coords), len(c.workers), dir)
	deadline := start.Add(o.Timeout)
	// base is where the gap to the next fault starts: the step the run
	// had reached when the last fault's recovery was over. recovering is
	// how many steps the recoveries so far took; as many per fault are
	// kept for those still to come, so the run does not end before its
	// last faults when recoveries take more steps than planned (a faster
	// step makes a recovery of the same duration cost more of them).
	//
	// The last sixteenth of the run is kept clear of planned faults: a
	// fault planned there found the run finished before its jitter had
	// passed once recoveries got quicker (seed 3: 29 of 30 injected).
	var base, recovering uint64
	margin := total / 16
	for i, f := range faults {
		if base >= total {
			break
		}
		left := total - base
		left -= min(margin, left)
		if i > 0 {
			left -= min(recovering/uint64(i)*uint64(len(faults)-i), left)
		}
		target := base + f.gap(left, len(faults)-i)
		share := left / uint64(len(faults)-i) // an even share of the steps left
		err := waitFor(ctx, time.Until(deadline), fmt.Sprintf("step %d before fault %d", target, i+1), c.tick, func() error {
			if c.finished || c.tl.progress() >= target {
				return nil
			}
			if err := c.crashLooping(); err != nil {
				return err
			}
			return fmt.Errorf("at step %d", c.tl.progress())
		})
		if err != nil {
			out.violations = append(out.violations, err.Error())
			break
		}
		if c.finished {
			break
		}
		if err := c.pause(ctx, f.Jitter); err != nil {
			return nil, err
		}
		if c.finished {
			break
		}
		r, err := c.inject(ctx, f, max(share, 1))
		if err != nil {
			return nil, err
		}
		out.records = append(out.records, r)
		if !r.Recovered && r.restarted.IsZero() { // an s3 outage is settled at the end
			break
		}
		base = max(c.tl.progress(), r.Step)
		recovering += base - r.Step
	}
	err = waitFor(ctx, time.Until(deadline), "a coordinator finishing the run", c.tick, func() error {
		if c.finished {
			return nil
		}
		if err := c.crashLooping(); err != nil {
			return err
		}
		return fmt.Errorf("at step %d", c.tl.progress())
	})
	out.took = time.Since(start)
	if err != nil {
		out.violations = append(out.violations, err.Error())
	}
	c.stopJettrain()
	c.settle(out.records)
	out.unexpected, out.refused = c.unexpected, c.refused
	c.tl.mu.Lock()
	out.violations = append(out.violations, c.tl.errs...)
	c.tl.mu.Unlock()
	if out.incarnations, err = readLogs(c); err != nil {
		out.violations = append(out.violations, err.Error())
	}
	if c.finished {
		if err := out.readStore(ctx, c.s3.url()); err != nil {
			out.violations = append(out.violations, err.Error())
		}
		out.stepTime = c.tl.stepTime(out.manifest.Step)
	}
	return out, nil
}

// readLogs parses the log of every coordinator incarnation, in slot and
// start order.
func readLogs(c *cluster) ([]Incarnation, error) {
	var incs []Incarnation
	for _, n := range c.coords {
		for i := 0; i < n.inc; i++ {
			f, err := os.Open(n.logPath(i))
			if err != nil {
				return incs, err
			}
			inc, err := ParseLog(n.incName(i), f)
			f.Close()
			if err != nil {
				return incs, err
			}
			incs = append(incs, inc)
		}
	}
	return incs, nil
}

// readStore reads the run's manifest and history.json.
func (out *outcome) readStore(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := objstore.Open(ctx, objstore.Config{Endpoint: url, AccessKey: s3Access, SecretKey: s3Secret})
	if err != nil {
		return err
	}
	runs, err := st.Runs(ctx)
	if err != nil {
		return err
	}
	if len(runs) != 1 {
		return fmt.Errorf("chaos: %d runs in the store, want 1: %v", len(runs), runs)
	}
	out.run = runs[0]
	if out.manifest, err = st.Manifest(ctx, out.run); err != nil {
		return err
	}
	out.history, err = st.History(ctx, out.run)
	return err
}

// Run is the experiment: a fault-free run, then a run of the same config
// with o.Faults faults drawn from o.Seed, each on fresh servers under
// o.Dir; then the invariants. The error is for a harness that could not
// run; broken promises are Report.Violations.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{Seed: o.Seed, Planned: o.Faults, Dir: o.Dir}
	fmt.Fprintf(o.Log, "chaos: fault-free run\n")
	base, err := runOnce(ctx, &o, filepath.Join(o.Dir, "fault-free"), nil, 0)
	if err != nil {
		return nil, fmt.Errorf("fault-free run: %w", err)
	}
	rep.BaselineTook, rep.BaselineDigest = base.took, base.manifest.WeightsSHA256
	total := base.manifest.Step
	for _, v := range base.violations {
		rep.Violations = append(rep.Violations, "fault-free run: "+v)
	}
	for _, u := range base.unexpected {
		rep.Violations = append(rep.Violations, "fault-free run: unexpected exit: "+u)
	}
	if total == 0 {
		return rep, errors.New("chaos: the fault-free run committed nothing; see " + base.violationsLine())
	}
	baseV, baseSteps := CheckCommits(base.incarnations, o.Shards, total)
	for _, v := range baseV {
		rep.Violations = append(rep.Violations, "fault-free run: "+v)
	}

	faults := plan(o.Seed, o.Faults, o.Kinds, base.stepTime)
	fmt.Fprintf(o.Log, "chaos: run with %d faults (seed %d) over %d steps of %v\n", len(faults), o.Seed, total, base.stepTime.Round(time.Millisecond))
	got, err := runOnce(ctx, &o, filepath.Join(o.Dir, "chaos"), faults, total)
	if err != nil {
		return rep, fmt.Errorf("chaos run: %w", err)
	}
	rep.Records, rep.Took, rep.Digest, rep.Steps, rep.Unexpected = got.records, got.took, got.manifest.WeightsSHA256, got.manifest.Step, got.unexpected
	rep.Refused = got.refused
	rep.Violations = append(rep.Violations, got.violations...)
	v, steps := CheckCommits(got.incarnations, o.Shards, total)
	rep.Violations = append(rep.Violations, v...)
	rep.Violations = append(rep.Violations, CompareSteps(baseSteps, steps)...)
	rep.Violations = append(rep.Violations, CheckHistory(got.history, base.history, o.Epochs, total)...)
	if got.manifest.Step != total {
		rep.Violations = append(rep.Violations, fmt.Sprintf("final: checkpoint at step %d, want %d", got.manifest.Step, total))
	}
	if rep.Digest != rep.BaselineDigest {
		rep.Violations = append(rep.Violations, fmt.Sprintf("final: weights sha256 %s, the fault-free run has %s", rep.Digest, rep.BaselineDigest))
	}
	for _, inc := range got.incarnations {
		rep.Incarnations++
		if len(inc.Commits) > 0 && inc.Commits[0].Replay {
			rep.Replays++
		}
	}
	return rep, nil
}

func (out *outcome) violationsLine() string {
	return fmt.Sprint(out.violations, out.unexpected)
}
