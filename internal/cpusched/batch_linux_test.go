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
// (the tests after it run under it, which they do not mind) and checks every
// thread, then threads the runtime starts afterwards and a child process.
func TestBatchCoversEveryThreadAndWhatFollows(t *testing.T) {
	before := policies(t)
	if len(notBatch(before)) == 0 {
		t.Fatal("every thread is batch before Batch: the test would show nothing")
	}
	if err := Batch(); err != nil {
		t.Fatal(err)
	}
	if tids := notBatch(policies(t)); len(tids) > 0 {
		t.Fatalf("threads %v are not SCHED_BATCH after Batch", tids)
	}

	// Goroutines locked to their threads and blocked in a system call make
	// the runtime start threads for the rest.
	const blocked = 4
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
	if len(after) <= len(before) {
		t.Fatalf("%d threads after blocking %d of them, %d before: no new thread to check", len(after), blocked, len(before))
	}
	if tids := notBatch(after); len(tids) > 0 {
		t.Fatalf("threads %v started after Batch are not SCHED_BATCH", tids)
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
