package objstore

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Latest returns the run's newest valid committed checkpoint and a manifest
// describing it.
//
// It reads the manifest and fetches the checkpoint it names, checking size,
// sha256, encoding, run and step. If that checkpoint is missing or corrupt
// (or the manifest itself is, or is missing while checkpoint objects are
// not), it calls warn with one line naming the key
// and the reason and falls back to the older checkpoint objects, newest
// first, each verified against the sha256 recorded when it was written.
// The manifest is not rewritten (the next Commit does that); the returned
// Manifest describes the checkpoint actually returned.
//
// It then makes history.json equal to the returned checkpoint's history,
// reporting a repair through warn.
//
// Errors: ErrNotFound if the run has neither a manifest nor a checkpoint
// object; ErrCorrupt
// if checkpoints exist but none is valid; transport and credential errors
// as they are (a network failure never causes a fallback). warn may be nil.
func (s *Store) Latest(ctx context.Context, run string, warn func(string)) (*Checkpoint, Manifest, error) {
	if err := ValidRun(run); err != nil {
		return nil, Manifest{}, err
	}
	if warn == nil {
		warn = func(string) {}
	}
	m, err := s.Manifest(ctx, run)
	below := uint64(math.MaxUint64)
	var noManifest error // the manifest's ErrNotFound, when it is missing
	switch {
	case err == nil:
		ck, got, err := s.readCheckpoint(ctx, run, m.Key, m.SHA256, m.Step)
		if err == nil {
			if got.Size != m.Size {
				err = s.corrupt(m.Key, fmt.Errorf("size %d, manifest says %d", got.Size, m.Size))
			} else {
				return s.finish(ctx, ck, m, warn)
			}
		}
		if !fallsBack(err) {
			return nil, Manifest{}, err
		}
		warn(fmt.Sprintf("%v; falling back to the previous checkpoint", err))
		below = m.Step
	case errors.Is(err, ErrNotFound):
		// No manifest: a run that never committed, unless checkpoint
		// objects say otherwise (the manifest deleted by hand or by a
		// lifecycle rule, or the first commit stopped between its two
		// puts). Each object is whole and carries its sha256, so the
		// newest valid one is resumed from, as with a corrupt manifest.
		noManifest = err
	case errors.Is(err, ErrCorrupt):
		warn(fmt.Sprintf("%v; falling back to the newest valid checkpoint", err))
	default:
		return nil, Manifest{}, err
	}

	steps, err := s.checkpointSteps(ctx, run, below)
	if err != nil {
		return nil, Manifest{}, err
	}
	if noManifest != nil {
		if len(steps) == 0 {
			return nil, Manifest{}, s.errorAs("latest", manifestKey(run), ErrNotFound, fmt.Errorf("run %s has no committed checkpoint", run))
		}
		warn(fmt.Sprintf("%v, but %d checkpoint objects are; resuming from the newest valid one", noManifest, len(steps)))
	}
	for _, step := range steps {
		key := CheckpointKey(run, step)
		ck, got, err := s.readCheckpoint(ctx, run, key, "", step)
		if err == nil {
			return s.finish(ctx, ck, got, warn)
		}
		if !fallsBack(err) {
			return nil, Manifest{}, err
		}
		warn(fmt.Sprintf("%v; trying an older checkpoint", err))
	}
	return nil, Manifest{}, s.errorAs("latest", checkpointsPrefix(run), ErrCorrupt, fmt.Errorf("run %s has no valid checkpoint left", run))
}

func fallsBack(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound)
}

func (s *Store) finish(ctx context.Context, ck *Checkpoint, m Manifest, warn func(string)) (*Checkpoint, Manifest, error) {
	if err := s.repairHistory(ctx, ck.Run, ck.History, warn); err != nil {
		return nil, Manifest{}, err
	}
	return ck, m, nil
}

// readCheckpoint fetches key, verifies its sha256 (want, or the one recorded
// at put time when want is empty), decodes it and checks run and step. It
// returns the checkpoint and the manifest describing what was read.
func (s *Store) readCheckpoint(ctx context.Context, run, key, want string, step uint64) (*Checkpoint, Manifest, error) {
	data, sum, err := s.getVerified(ctx, key, want)
	if err != nil {
		return nil, Manifest{}, err
	}
	ck := new(Checkpoint)
	if err := ck.UnmarshalBinary(data); errors.Is(err, ErrVersion) {
		return nil, Manifest{}, s.errorAs("get", key, ErrVersion, err)
	} else if err != nil {
		return nil, Manifest{}, s.corrupt(key, err)
	}
	if ck.Run != run || ck.Step != step {
		return nil, Manifest{}, s.corrupt(key, fmt.Errorf("holds run %s step %d", ck.Run, ck.Step))
	}
	return ck, manifestFor(ck, key, data, sum), nil
}
