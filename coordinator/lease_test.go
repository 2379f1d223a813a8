package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/internal/syncbuf"
)

func TestJudgeHolder(t *testing.T) {
	host, _ := os.Hostname()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead, space := cmd.Process.Pid, pidSpace()
	if space == "" {
		t.Fatal("no pid space on Linux")
	}
	id := func(host string, pid int, space string) string {
		if space == "" {
			return fmt.Sprintf("%s-%d", host, pid)
		}
		return fmt.Sprintf("%s-%d-%s", host, pid, space)
	}
	for _, tc := range []struct {
		holder, space string
		want          holderVerdict
	}{
		{id(host, dead, space), space, holderGone},
		{id(host, os.Getpid(), space), space, holderGone},       // this process, an earlier run
		{id(host, os.Getppid(), space), space, holderElsewhere}, // alive
		{id("elsewhere", dead, space), space, holderElsewhere},  // other hosts are never judged
		{id(host, dead, "0badf00d"), space, holderMaybeGone},    // another pid namespace or machine
		{id(host, dead, ""), space, holderMaybeGone},            // an id without its pid space
		{id(host, os.Getppid(), space), "", holderMaybeGone},    // this one's pid space unknown
		{"me", space, holderMaybeGone},                          // an id set by hand, used again
		{"someone", space, holderElsewhere},
		{host + "-x", space, holderElsewhere},
	} {
		if got := judgeHolder(tc.holder, "me", tc.space); got != tc.want {
			t.Errorf("judgeHolder(%q) in space %q = %v, want %v", tc.holder, tc.space, got, tc.want)
		}
	}
	if got, want := defaultID(), id(host, os.Getpid(), space); got != want {
		t.Errorf("default id %q, want %q", got, want)
	}
}

// TestARefreshAfterTheKeyExpiredIsALoss: a coordinator that could not
// refresh for longer than the TTL finds the key expired (not deleted: the
// bucket's age limit removed it), and gives the lease up.
func TestARefreshAfterTheKeyExpiredIsALoss(t *testing.T) {
	_, kv := leaseKV(t, time.Second)
	ctx := context.Background()
	rev, err := kv.Create(ctx, "run", []byte("me"))
	if err != nil {
		t.Fatal(err)
	}
	l := &lease{kv: kv, key: "run", id: "me", ttl: time.Second, rev: rev}                   // not kept: its refreshes stopped
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) { // polling
		if _, err := kv.Get(ctx, "run"); errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key did not expire")
		}
	}
	if err := l.refresh(ctx); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("refresh after the key expired: %v, want ErrLeaseLost", err)
	}
}

// TestARefreshTheBrokerDoesNotAnswerIsNoLoss: an unreachable broker is not
// a loss (no other coordinator can take the lease through it either); the
// next refresh tries again.
func TestARefreshTheBrokerDoesNotAnswerIsNoLoss(t *testing.T) {
	srv := runNATS(t, t.TempDir())
	js, err := jetstream.New(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), leaseBucket(time.Minute, 1))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(context.Background(), "run", []byte("me"))
	if err != nil {
		t.Fatal(err)
	}
	l := &lease{kv: kv, key: "run", id: "me", ttl: time.Minute, rev: rev}
	srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.refresh(ctx); err != nil {
		t.Fatalf("refresh with the broker down: %v, want no loss", err)
	}
}

// takenLease is the lease of run "run" that coordinator "me" took, kept
// until the test ends, on a fresh leases bucket (TTL ttl).
func takenLease(t *testing.T, ttl time.Duration) (jetstream.KeyValue, *lease) {
	t.Helper()
	js, kv := leaseKV(t, ttl)
	l, err := acquireLease(context.Background(), js, "run", "me", ttl, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.release)
	return kv, l
}

// leaseKV starts a JetStream server with the leases bucket (TTL ttl) and
// returns its client and the bucket.
func leaseKV(t *testing.T, ttl time.Duration) (jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	srv := runNATS(t, t.TempDir())
	js, err := jetstream.New(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(context.Background(), leaseBucket(ttl, 1))
	if err != nil {
		t.Fatal(err)
	}
	return js, kv
}

// TestALeaseIsKeptFromTheMomentItIsTaken: the lease is refreshed while
// the coordinator is still starting (loading a checkpoint, say), before it
// serves the run, so a slow start cannot let a standby take it.
func TestALeaseIsKeptFromTheMomentItIsTaken(t *testing.T) {
	kv, l := takenLease(t, time.Second)
	first, err := kv.Get(context.Background(), "run")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, err := kv.Get(context.Background(), "run")
		if err == nil && e.Revision() > first.Revision()+2 && string(e.Value()) == "me" {
			break // refreshed several times, well past the TTL
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease was not refreshed before serving (last: %v, %v)", e, err)
		}
		time.Sleep(50 * time.Millisecond) // polling
	}
	select {
	case <-l.lost:
		t.Fatalf("the lease was lost: %v", l.cause)
	default:
	}
}

// TestALeaseWhoseKeyIsGoneIsLost: a coordinator cut off for longer than
// the TTL finds its key gone. A standby may have led the run meanwhile,
// finished it and released the key, so its own step is stale: it gives
// the lease up (Train starts over from the newest checkpoint) instead of
// taking the key again and serving an old step nobody can compute.
func TestALeaseWhoseKeyIsGoneIsLost(t *testing.T) {
	kv, l := takenLease(t, time.Second)
	if err := kv.Delete(context.Background(), "run"); err != nil { // a standby finished and released it
		t.Fatal(err)
	}
	select {
	case <-l.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the lease whose key is gone is still held")
	}
	if !errors.Is(l.cause, ErrLeaseLost) {
		t.Fatalf("lost with %v, want ErrLeaseLost", l.cause)
	}
	if _, err := kv.Get(context.Background(), "run"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the key was taken again (%v)", err)
	}
}

// TestALeaseHeldByAnotherIsLost: a refresh that finds another
// coordinator's id in the key is a loss.
func TestALeaseHeldByAnotherIsLost(t *testing.T) {
	kv, l := takenLease(t, time.Second)
	if _, err := kv.Put(context.Background(), "run", []byte("other")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the lease another coordinator holds is still held")
	}
	if !errors.Is(l.cause, ErrLeaseLost) || !strings.Contains(l.cause.Error(), "other") {
		t.Fatalf("lost with %v, want ErrLeaseLost naming the holder", l.cause)
	}
}

// TestALeaseHoldsOnlyWhileItsKeyNamesItsHolder: holds, which the trimmer
// asks before each purge, asks the broker.
func TestALeaseHoldsOnlyWhileItsKeyNamesItsHolder(t *testing.T) {
	kv, l := takenLease(t, time.Minute)
	ctx := context.Background()
	if !l.holds(ctx) {
		t.Fatal("the lease just taken is not held")
	}
	if _, err := kv.Put(ctx, "run", []byte("other")); err != nil {
		t.Fatal(err)
	}
	if l.holds(ctx) {
		t.Fatal("the lease another coordinator took is still held")
	}
	if err := kv.Delete(ctx, "run"); err != nil {
		t.Fatal(err)
	}
	if l.holds(ctx) {
		t.Fatal("the lease whose key is gone is still held")
	}
}

// TestALiveCoordinatorWithTheSameIDKeepsItsLease: coordinators on machines
// of the same host name, or in pid namespaces of their own on one host, can
// share an id. One of them finding its own id in the key cannot tell an
// earlier life of its own from the other, live, coordinator, which refreshes
// the lease meanwhile: it waits as a standby rather than take the lease.
func TestALiveCoordinatorWithTheSameIDKeepsItsLease(t *testing.T) {
	const ttl = 3 * time.Second
	js, _ := leaseKV(t, ttl)
	held, err := acquireLease(context.Background(), js, "run", "me", ttl, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*ttl)
	defer cancel()
	if l, err := acquireLease(ctx, js, "run", "me", ttl, quietLog()); err == nil {
		l.release()
		t.Fatal("a coordinator took the lease a live one with the same id keeps")
	}
	if !held.holds(context.Background()) {
		t.Fatal("the live coordinator lost its lease")
	}
}

// TestAnUnrefreshedLeaseOfTheSameIDIsTakenBeforeItExpires: the key still
// names this coordinator's id, but nobody refreshes it (an earlier life of
// this process, killed): the lease is taken over once it has gone
// unrefreshed for two thirds of the TTL, not only when the key expires.
func TestAnUnrefreshedLeaseOfTheSameIDIsTakenBeforeItExpires(t *testing.T) {
	const ttl = 6 * time.Second
	js, kv := leaseKV(t, ttl)
	if _, err := kv.Create(context.Background(), "run", []byte("me")); err != nil {
		t.Fatal(err)
	}
	logs := new(syncbuf.Buffer)
	l, err := acquireLease(context.Background(), js, "run", "me", ttl, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	if !strings.Contains(logs.String(), "took over the lease of a coordinator that died on this host") {
		t.Fatalf("the lease was not taken over from the dead holder (it expired?):\n%s", logs)
	}
}

// TestTheLeaseOfADeadProcessOfThisPidSpaceIsTakenAtOnce: a lease held by a
// coordinator process that ran on this host, in this pid namespace, and no
// longer runs (killed before it released the lease) is taken over at once,
// not after the TTL, nor after two thirds of it.
func TestTheLeaseOfADeadProcessOfThisPidSpaceIsTakenAtOnce(t *testing.T) {
	const ttl = time.Minute
	js, kv := leaseKV(t, ttl)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	dead := fmt.Sprintf("%s-%d-%s", host, cmd.Process.Pid, pidSpace())
	if _, err := kv.Create(context.Background(), "run", []byte(dead)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ttl/6)
	defer cancel()
	l, err := acquireLease(ctx, js, "run", defaultID(), ttl, quietLog())
	if err != nil {
		t.Fatalf("the lease of %s, dead, was not taken over at once: %v", dead, err)
	}
	l.release()
}
