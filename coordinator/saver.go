package coordinator

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/telemetry"
)

// saver persists checkpoints in the background, newest first: while one
// commit is in flight, a newer snapshot replaces any older one waiting, so a
// slow store costs checkpoints, never training time. Failed commits retry
// with backoff and a warning. Each commit keeps the run's keep newest
// checkpoints and lets the trimmer purge the grads stream below it.
type saver struct {
	store  *objstore.Store
	trim   *trimmer
	run    string
	keep   int
	layout model.Layout
	log    *slog.Logger
	hook   func(step uint64)
	trace  *tracing

	tidyWarned time.Time // when a committed checkpoint's tidying up last failed with a warning (the loop's own)

	mu      sync.Mutex
	wake    chan struct{}
	pending *objstore.Checkpoint
	best    *objstore.Checkpoint
	busy    bool
	flushed chan struct{} // closed and replaced whenever the saver goes idle
	failing error         // the last save's error while saves fail; nil once one succeeds
}

func newSaver(store *objstore.Store, trim *trimmer, run string, keep int, layout model.Layout, log *slog.Logger, hook func(uint64)) *saver {
	return &saver{store: store, trim: trim, run: run, keep: keep, layout: layout, log: log, hook: hook,
		wake: make(chan struct{}, 1), flushed: make(chan struct{})}
}

// save queues ck, replacing an older queued snapshot. best marks the
// weights to write as best.safetensors.
func (s *saver) save(ck *objstore.Checkpoint, best bool) {
	s.mu.Lock()
	s.pending = ck
	if best {
		s.best = ck
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run commits queued snapshots until ctx ends.
func (s *saver) loop(ctx context.Context) {
	for {
		s.mu.Lock()
		ck, best := s.pending, s.best
		s.pending, s.best = nil, nil
		s.busy = ck != nil || best != nil
		if !s.busy {
			close(s.flushed)
			s.flushed = make(chan struct{})
		}
		s.mu.Unlock()
		if ck == nil && best == nil {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		// The best weights go first: once a checkpoint whose history names
		// them best is committed, nothing writes them again (a restart
		// resumes past their epoch), so a stop in between would leave
		// best.safetensors behind history.json for good. Written first, a
		// stop in between leaves them ahead of a history that the restart
		// then brings level.
		if best != nil && !s.retry(ctx, "best weights", func() error { return s.store.PutBest(ctx, s.run, tensors(s.layout, best.Weights)) }) {
			return
		}
		if ck != nil && !s.commit(ctx, ck) {
			return
		}
	}
}

// lastError is the error of the last save while saves fail, nil once one
// succeeds.
func (s *saver) lastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failing
}

// flush waits until every queued snapshot is committed.
func (s *saver) flush(ctx context.Context) error {
	for {
		s.mu.Lock()
		idle := !s.busy && s.pending == nil && s.best == nil
		ch := s.flushed
		s.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (s *saver) commit(ctx context.Context, ck *objstore.Checkpoint) bool {
	start := time.Now()
	sctx, span := s.trace.tr.Start(ctx, telemetry.SpanCheckpointSave, trace.WithAttributes(
		s.trace.runAttr, attribute.Int64(telemetry.AttrStep, int64(ck.Step)), attribute.Int(telemetry.AttrEpoch, ck.Epoch)))
	var man objstore.Manifest
	ok := s.retry(sctx, "checkpoint", func() error {
		var err error
		man, err = s.store.CommitKeeping(sctx, ck, s.keep)
		if err != nil && man.Key != "" {
			// Committed: only rewriting history.json or deleting older
			// checkpoints failed. The next commit rewrites the one and
			// retries the other; committing this one again would not help.
			s.afterCommitFailed(ck.Step, err)
			return nil
		}
		return err
	})
	span.SetAttributes(attribute.String(telemetry.AttrCheckpoint, man.Key), attribute.Int64(telemetry.AttrBytes, man.Size))
	span.End()
	if !ok {
		return false
	}
	s.trace.m.CheckpointDuration.Record(ctx, time.Since(start).Seconds(), s.trace.runSet)
	s.trace.m.CheckpointBytes.Add(ctx, man.Size, s.trace.runSet)
	s.log.Debug("checkpoint committed", "run", s.run, "step", ck.Step, "took", time.Since(start))
	s.trim.checkpointed(ctx, ck.Step, ck.GradsSeq)
	if s.hook != nil {
		s.hook(ck.Step)
	}
	return true
}

// afterCommitFailed reports that the checkpoint of step is committed but
// what follows the commit point failed: a warning at most once a minute (a
// store whose policy denies deletes fails so at every checkpoint), debug
// lines between.
func (s *saver) afterCommitFailed(step uint64, err error) {
	if !pace.Due(&s.tidyWarned, time.Now(), time.Minute) {
		s.log.Debug("coordinator: checkpoint committed; rewriting history.json or deleting older checkpoints failed again", "run", s.run, "step", step, "err", err)
		return
	}
	s.log.Warn("coordinator: checkpoint committed, but rewriting history.json or deleting older checkpoints failed; the next checkpoint tries again", "run", s.run, "step", step, "err", err)
}

// retry runs op until it succeeds or ctx ends, backing off from 250ms to
// 15s and warning once per failure streak and then every minute.
func (s *saver) retry(ctx context.Context, what string, op func() error) bool {
	backoff := 250 * time.Millisecond
	var warned time.Time
	for {
		err := op()
		s.mu.Lock()
		s.failing = err
		s.mu.Unlock()
		if err == nil {
			if !warned.IsZero() {
				s.log.Info("coordinator: object store is back; "+what+" saved", "run", s.run)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if pace.Due(&warned, time.Now(), time.Minute) {
			s.log.Warn("coordinator: saving "+what+" failed; training goes on and the save is retried", "run", s.run, "err", err)
		} else {
			// Every attempt shows at debug level; warnings stay one a minute.
			s.log.Debug("coordinator: saving "+what+" failed again; retrying", "run", s.run, "in", backoff, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

func tensors(l model.Layout, w []float32) []objstore.Tensor {
	out := make([]objstore.Tensor, len(l))
	for i, p := range l {
		out[i] = objstore.Tensor{Name: p.Name, Shape: p.Shape, Data: w[p.Offset : p.Offset+p.Size]}
	}
	return out
}
