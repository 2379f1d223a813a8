package objstore

import (
	"context"
	"sort"
)

// Commit makes ck the run's newest checkpoint, in this order:
//
//  1. put runs/<run>/checkpoints/<step> (sha256 in its metadata, and signed
//     as the request's payload hash);
//  2. put runs/<run>/checkpoint.json, the manifest naming it — the commit
//     point: a crash before this leaves the previous commit in force;
//  3. rewrite runs/<run>/history.json from ck.History;
//  4. delete the run's checkpoints older than the newest Keep, never the
//     one just committed and never one newer than it.
//
// An error from step 3 or 4 is returned with the manifest: the commit has
// happened (Latest repairs history.json; retention catches up next time).
// Callers tell these apart by a non-empty Manifest.Key.
//
// Commit encodes ck before its first request and keeps no reference to ck
// or its slices afterwards; ck must not be modified while Commit runs.
// Commits of one run must not run concurrently.
func (s *Store) Commit(ctx context.Context, ck *Checkpoint) (Manifest, error) {
	return s.CommitKeeping(ctx, ck, s.cfg.Keep)
}

// CommitKeeping is Commit keeping keep of the run's checkpoints (at least
// 1), the committed one among them, rather than the store's Config.Keep: a
// run's own `keep` setting.
func (s *Store) CommitKeeping(ctx context.Context, ck *Checkpoint, keep int) (Manifest, error) {
	data, err := ck.MarshalBinary()
	if err != nil {
		return Manifest{}, err
	}
	key := CheckpointKey(ck.Run, ck.Step)
	sum := sha256Hex(data)
	m := manifestFor(ck, key, data, sum)
	history := encodeHistory(ck.History)
	if err := s.putSum(ctx, key, data, sum, "application/octet-stream", false); err != nil {
		return Manifest{}, err
	}
	if err := s.put(ctx, manifestKey(ck.Run), m.encode(), "application/json", false); err != nil {
		return Manifest{}, err
	}
	if err := s.put(ctx, historyKey(ck.Run), history, "application/json", false); err != nil {
		return m, err
	}
	return m, s.prune(ctx, ck.Run, ck.Step, keep)
}

// prune deletes checkpoints of run older than committed, keeping the
// newest keep-1 of them besides the committed one.
func (s *Store) prune(ctx context.Context, run string, committed uint64, keep int) error {
	older, err := s.checkpointSteps(ctx, run, committed)
	if err != nil {
		return err
	}
	keep = max(keep, 1) - 1
	if len(older) <= keep {
		return nil
	}
	for _, step := range older[keep:] {
		if err := s.remove(ctx, CheckpointKey(run, step)); err != nil {
			return err
		}
	}
	return nil
}

// checkpointSteps lists the steps of run's checkpoint objects below the
// given step, newest first.
func (s *Store) checkpointSteps(ctx context.Context, run string, below uint64) ([]uint64, error) {
	keys, err := s.list(ctx, checkpointsPrefix(run), true)
	if err != nil {
		return nil, err
	}
	var steps []uint64
	for _, k := range keys {
		if step, ok := parseCheckpointKey(run, k); ok && step < below {
			steps = append(steps, step)
		}
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i] > steps[j] })
	return steps, nil
}

// Checkpoints returns the steps of the checkpoint objects the run holds,
// newest first, committed or not.
func (s *Store) Checkpoints(ctx context.Context, run string) ([]uint64, error) {
	if err := ValidRun(run); err != nil {
		return nil, err
	}
	return s.checkpointSteps(ctx, run, MaxStep+1)
}
