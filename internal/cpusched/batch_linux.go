package cpusched

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Batch sets SCHED_BATCH on every thread of the process under the default
// policy (SCHED_OTHER); a thread someone put under another policy keeps it.
// An error matches ErrUnsupported where the system lacks the call. The Go runtime
// starts threads at any time, each inheriting the policy of the thread that
// starts it, so it goes over the process's threads until a pass finds them
// all batch already: a thread started meanwhile by one not yet set is set
// in the next pass.
func Batch() error {
	for pass := 0; pass < maxPasses; pass++ {
		changed, err := batchPass()
		if err != nil || !changed {
			return err
		}
	}
	return fmt.Errorf("cpusched: the process's threads kept changing over %d passes", maxPasses)
}

// maxPasses bounds Batch's passes; a pass finds at most the threads started
// during the one before it.
const maxPasses = 10

// batchPass sets SCHED_BATCH on each thread under the default policy and
// reports whether there was one. Threads under another policy (real-time,
// idle, or batch already) are left as they are: someone chose it.
func batchPass() (changed bool, err error) {
	tids, err := threads()
	if err != nil {
		return false, err
	}
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err == unix.ESRCH { // the thread ended
			continue
		}
		if err != nil {
			return changed, unsupported(fmt.Errorf("cpusched: reading the policy of thread %d: %w", tid, err), err)
		}
		if a.Policy != unix.SCHED_NORMAL {
			continue
		}
		a.Policy = unix.SCHED_BATCH
		switch err := unix.SchedSetAttr(tid, a, 0); err {
		case nil:
			changed = true
		case unix.ESRCH:
		default:
			return changed, unsupported(fmt.Errorf("cpusched: setting SCHED_BATCH on thread %d: %w", tid, err), err)
		}
	}
	return changed, nil
}

// unsupported adds ErrUnsupported to err when the system lacks the call
// (errno ENOSYS: an old kernel, a sandbox such as gVisor, a seccomp filter).
func unsupported(err error, errno error) error {
	if errno == unix.ENOSYS {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	return err
}

// threads lists the ids of the process's threads.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("cpusched: listing the process's threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
