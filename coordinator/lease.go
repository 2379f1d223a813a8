package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/protocol"
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
type lease struct {
	kv  jetstream.KeyValue
	key string
	id  string
	ttl time.Duration
	rev uint64
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
	for {
		rev, err := kv.Create(ctx, run, []byte(id))
		if err == nil {
			l.rev = rev
			if waiting {
				log.Info("standby takes over the run", "run", run, "coordinator", id)
			}
			return l, nil
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
		if gerr == nil && holderIsGone(string(e.Value()), id) {
			// The holder was this machine's previous coordinator process,
			// killed before it could release the lease: take it over now
			// instead of waiting for the TTL.
			if rev, err := kv.Update(ctx, run, []byte(id), e.Revision()); err == nil {
				l.rev = rev
				log.Info("took over the lease of a coordinator that died on this host", "run", run, "previous", string(e.Value()))
				return l, nil
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
		if !pace.Wait(ctx, ttl/4) {
			return nil, ctx.Err()
		}
	}
}

// keep refreshes the lease every ttl/3 until ctx ends, and calls lost with
// the error once if a refresh fails or finds another holder.
func (l *lease) keep(ctx context.Context, lost func(error)) {
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
				lost(err)
			}
			return
		}
	}
}

// refresh extends the lease. A broker that cannot be reached, or has no
// room to store the lease, is not a loss (no other coordinator can take
// the lease or commit through it either); a key that
// expired meanwhile is taken again if still free; a key held by another
// coordinator is a loss.
func (l *lease) refresh(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, l.key, []byte(l.id), l.rev)
	if err == nil {
		l.rev = rev
		return nil
	}
	if protocol.NoRoom(err) {
		return nil // no coordinator can take the lease, or commit, either
	}
	e, gerr := l.kv.Get(ctx, l.key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		rev, err := l.kv.Create(ctx, l.key, []byte(l.id))
		if err == nil {
			l.rev = rev
			return nil
		}
		if protocol.NoRoom(err) {
			return nil
		}
		return fmt.Errorf("%w %s: the lease expired and was taken", ErrLeaseLost, l.key)
	case gerr != nil:
		return nil // unreachable broker: retry on the next tick
	case string(e.Value()) != l.id:
		return fmt.Errorf("%w %s: coordinator %s leads it now", ErrLeaseLost, l.key, e.Value())
	}
	l.rev = e.Revision()
	return nil
}

// release gives the run up at once so a standby need not wait for the TTL.
func (l *lease) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev))
}

// holderIsGone reports whether the lease holder is a coordinator process
// of this host that no longer runs (ids are "host-pid"): this process in an
// earlier life (the same id, as in a restarted container), or a pid that is
// gone.
func holderIsGone(holder, self string) bool {
	if holder == self {
		return true
	}
	host, _ := os.Hostname()
	pidText, ok := strings.CutPrefix(holder, host+"-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return !processAlive(pid)
}

// processAlive reports whether a process with pid exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
