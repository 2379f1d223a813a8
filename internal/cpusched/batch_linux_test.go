package cpusched

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// policies returns the policy of each of the process's threads, by id.
func policies(t *testing.T) map[int]uint32 {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[int]uint32, len(tids))
	for _, tid := range tids {
		a, err := unix.SchedGetAttr(tid, 0)
		if err == unix.ESRCH {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[tid] = a.Policy
	}
	return out
}

// resetAfter puts every thread back under the default policy when t ends,
// so the tests can run again in this process (-count).
func resetAfter(t *testing.T) {
	t.Cleanup(func() {
		tids, _ := threads()
		for _, tid := range tids {
			_ = unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_NORMAL}, 0)
		}
	})
}

func notBatch(pols map[int]uint32) []int {
	var tids []int
	for tid, p := range pols {
		if p != unix.SCHED_BATCH {
			tids = append(tids, tid)
		}
	}
	return tids
}

// TestBatchCoversEveryThreadAndWhatFollows sets the policy in this process
// and checks every thread, then threads the runtime starts afterwards and a
// child process. It needs a process under the default policy (not one
// started with chrt).
func TestBatchCoversEveryThreadAndWhatFollows(t *testing.T) {
	before := policies(t)
	for tid, p := range before {
		if p != unix.SCHED_NORMAL {
			t.Fatalf("thread %d has policy %d before Batch, want SCHED_OTHER: the test would show nothing", tid, p)
		}
	}
	resetAfter(t)
	if err := Batch(); err != nil {
		t.Fatal(err)
	}
	if tids := notBatch(policies(t)); len(tids) > 0 {
		t.Fatalf("threads %v are not SCHED_BATCH after Batch", tids)
	}

	// Goroutines locked to their threads and blocked in a system call, more
	// of them than the process has threads, make the runtime start threads.
	blocked := len(before) + 2
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	started := make(chan struct{})
	done := make(chan struct{})
	for range blocked {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started <- struct{}{}
			var b [1]byte
			_, _ = unix.Read(int(r.Fd()), b[:]) // a raw read: the thread itself blocks
			done <- struct{}{}
		}()
	}
	for range blocked {
		<-started
	}
	after := policies(t)
	var fresh []int
	for tid := range after {
		if _, ok := before[tid]; !ok {
			fresh = append(fresh, tid)
		}
	}
	if len(fresh) == 0 {
		t.Fatalf("no thread started after blocking %d of them: nothing to check", blocked)
	}
	if tids := notBatch(after); len(tids) > 0 {
		t.Fatalf("threads %v are not SCHED_BATCH after threads %v started", tids, fresh)
	}
	if _, err := w.Write(make([]byte, blocked)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	for range blocked {
		<-done
	}

	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	a, err := unix.SchedGetAttr(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	if a.Policy != unix.SCHED_BATCH {
		t.Fatalf("a child process has policy %d, want SCHED_BATCH (%d)", a.Policy, unix.SCHED_BATCH)
	}
}

// TestBatchKeepsAPolicySomeoneChose leaves a thread put under SCHED_IDLE as
// it is.
func TestBatchKeepsAPolicySomeoneChose(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0); err != nil {
		t.Fatal(err)
	}
	resetAfter(t)
	if err := Batch(); err != nil {
		t.Fatal(err)
	}
	pols := policies(t)
	if pols[tid] != unix.SCHED_IDLE {
		t.Fatalf("a thread under SCHED_IDLE has policy %d after Batch, want it kept", pols[tid])
	}
	if others := notBatch(pols); len(others) != 1 {
		t.Fatalf("threads %v are not SCHED_BATCH after Batch, want only the idle one, %d", others, tid)
	}
}
