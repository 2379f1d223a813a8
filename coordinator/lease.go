package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/pace"
)

// LeasesBucket holds one key per run: the id of the coordinator leading it.
const LeasesBucket = "jt-leases"

// ErrLeaseLost means another coordinator may lead the run now; this one
// stops before it can commit anything more.
var ErrLeaseLost = errors.New("coordinator: lost the leadership of the run")

// ErrFenced means another coordinator committed a step with other weights:
// the run is not deterministic or two configs share a signature.
var ErrFenced = errors.New("coordinator: step already committed by another coordinator")

// lease is the leadership of one run: a key created only if absent, kept
// alive by revision-checked updates, and gone ttl after its holder stops
// refreshing it. A second coordinator started on the same run waits as a hot
// standby until the key expires, then takes over.
//
// A lease is kept from the moment it is taken until it is released, so a
// coordinator slow to start (a large checkpoint, a slow object store) does
// not let it expire before it serves the run.
type lease struct {
	kv  jetstream.KeyValue
	key string
	id  string
	ttl time.Duration
	rev uint64 // owned by the keeping goroutine until release stops it

	stop  context.CancelFunc
	kept  chan struct{} // closed when the keeping goroutine has ended
	lost  chan struct{} // closed when the lease is lost; cause says why
	cause error
}

// leaseBucket is the configuration of the leases bucket: a lease expires ttl
// after its holder last refreshed it.
func leaseBucket(ttl time.Duration, replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      LeasesBucket,
		Description: "jettrain run leadership",
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// acquireLease blocks until this coordinator leads run or ctx ends. The
// leases bucket (leaseBucket, with ttl) exists: protocol.Ensure made it.
func acquireLease(ctx context.Context, js jetstream.JetStream, run, id string, ttl time.Duration, log *slog.Logger) (*lease, error) {
	kv, err := js.KeyValue(ctx, LeasesBucket)
	if err != nil {
		return nil, fmt.Errorf("coordinator: lease bucket: %w", err)
	}
	l := &lease{kv: kv, key: run, id: id, ttl: ttl}
	waiting := false
	var suspect suspectHolder
	space := pidSpace()
	for {
		rev, err := kv.Create(ctx, run, []byte(id))
		if err == nil {
			if waiting {
				log.Info("standby takes over the run", "run", run, "coordinator", id)
			}
			return l.keep(rev), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if !transient(err) || ctx.Err() != nil {
				return nil, fmt.Errorf("coordinator: lease of run %s: %w", run, err)
			}
			// The bucket's stream is electing a leader or the broker is
			// restarting: ask again.
			log.Warn("coordinator: lease request failed; retrying", "run", run, "err", err)
			if !pace.Wait(ctx, ttl/4) {
				return nil, ctx.Err()
			}
			continue
		}
		e, gerr := kv.Get(ctx, run)
		pause := ttl / 4
		verdict := holderElsewhere
		if gerr == nil {
			verdict = judgeHolder(string(e.Value()), id, space)
		}
		// A holder that is this machine's previous coordinator process,
		// killed before it could release the lease, is taken over now
		// instead of after the TTL. One that only may be (see
		// judgeHolder) is taken over once its lease has gone unrefreshed
		// for two thirds of the TTL, at the revision seen then: a live
		// coordinator refreshes its lease every third of the TTL (a
		// refresh up to a third late still keeps it).
		if verdict == holderMaybeGone {
			if wait := suspect.see(e.Revision(), 2*ttl/3); wait > 0 {
				pause = min(pause, wait)
			} else {
				verdict = holderGone
			}
		}
		if verdict == holderGone {
			if rev, err := kv.Update(ctx, run, []byte(id), e.Revision()); err == nil {
				log.Info("took over the lease of a coordinator that died on this host", "run", run, "previous", string(e.Value()))
				return l.keep(rev), nil
			}
		}
		if !waiting {
			holder := "another coordinator"
			if gerr == nil {
				holder = string(e.Value())
			}
			log.Info("standby: another coordinator leads the run; waiting to take over", "run", run, "leader", holder)
			waiting = true
		}
		if !pace.Wait(ctx, pause) {
			return nil, ctx.Err()
		}
	}
}

// suspectHolder is a lease holder that looks gone, at the revision of the
// key it was first seen at.
type suspectHolder struct {
	rev   uint64
	since time.Time
}

// see notes the key at rev and returns how much longer it must stay at rev
// to have gone unrefreshed for quiet: all of quiet when rev is new.
func (s *suspectHolder) see(rev uint64, quiet time.Duration) time.Duration {
	now := time.Now()
	if rev != s.rev {
		s.rev, s.since = rev, now
	}
	return quiet - now.Sub(s.since)
}

// keep starts refreshing the lease, taken at revision rev, every ttl/3
// until release; a refresh that finds the lease lost (see refresh) closes
// lost.
func (l *lease) keep(rev uint64) *lease {
	l.rev = rev
	ctx, stop := context.WithCancel(context.Background())
	l.stop, l.kept, l.lost = stop, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(l.kept)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := l.refresh(ctx); err != nil {
				if ctx.Err() == nil {
					l.cause = err
					close(l.lost)
				}
				return
			}
		}
	}()
	return l
}

// cancelOnLoss cancels ctx with the lease's loss as the cause, if the lease
// is lost before ctx ends; it returns when either happens.
func (l *lease) cancelOnLoss(ctx context.Context, cancel context.CancelCauseFunc) {
	select {
	case <-l.lost:
		cancel(l.cause)
	case <-ctx.Done():
	}
}

// refresh extends the lease. Only the stream's leader can say the key
// changed since the last refresh (a revision mismatch): any other failure —
// an unreachable broker, no room to store the lease, a leader being
// elected — is not a loss, since no other coordinator can take the lease or
// commit through it either. After a mismatch, a key held by another
// coordinator is a loss, and so is a key gone: it expired, so a standby may
// have led the run since, even finished it and purged its gradients, and
// this coordinator's step is no longer the run's. Train then starts over
// from the newest checkpoint, taking the lease again if it is free. A key
// that still names this coordinator was its own refresh whose answer was
// lost.
func (l *lease) refresh(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, l.key, []byte(l.id), l.rev)
	if err == nil {
		l.rev = rev
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // retried on the next tick
	}
	e, gerr := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound), errors.Is(gerr, jetstream.ErrKeyDeleted):
		return fmt.Errorf("%w %s: the lease expired", ErrLeaseLost, l.key)
	case gerr != nil:
		return nil // unreachable broker: retry on the next tick
	case string(e.Value()) != l.id:
		return fmt.Errorf("%w %s: coordinator %s leads it now", ErrLeaseLost, l.key, e.Value())
	}
	l.rev = e.Revision()
	return nil
}

// holds reports whether this coordinator still holds the lease, asking the
// broker: false once a refresh found it lost, when the key names another
// coordinator or is gone, and when the broker does not answer. It is a
// check, not a fence: the lease may be lost right after it, and a replica
// that lags may answer for the key.
func (l *lease) holds(ctx context.Context) bool {
	select {
	case <-l.lost:
		return false
	default:
	}
	e, err := l.kv.Get(ctx, l.key)
	return err == nil && string(e.Value()) == l.id
}

// release stops refreshing the lease and gives the run up at once, so a
// standby need not wait for the TTL.
func (l *lease) release() {
	l.stop()
	<-l.kept
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}
