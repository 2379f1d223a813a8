package cpusched

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Batch sets SCHED_BATCH on every thread of the process. The Go runtime
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

// batchPass sets SCHED_BATCH on each thread that lacks it and reports
// whether there was one.
func batchPass() (changed bool, err error) {
	tids, err := threads()
	if err != nil {
		return false, err
	}
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			if err == unix.ESRCH { // the thread ended
				continue
			}
			return changed, fmt.Errorf("cpusched: reading the policy of thread %d: %w", tid, err)
		}
		if a.Policy == unix.SCHED_BATCH {
			continue
		}
		a.Policy = unix.SCHED_BATCH
		if err := unix.SchedSetAttr(tid, a, 0); err != nil && err != unix.ESRCH {
			return changed, fmt.Errorf("cpusched: setting SCHED_BATCH on thread %d: %w", tid, err)
		}
		changed = true
	}
	return changed, nil
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
