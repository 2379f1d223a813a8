package coordinator

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// A coordinator's default id is "host-pid-space": its host name, its pid,
// and a tag of the pid space that pid is one of (the machine's boot and the
// pid namespace: see pidSpace). Another coordinator with the same tag
// sees the same processes under the same pids, so it can tell whether the
// holder of a lease still runs; without it (another namespace, another
// machine of the same host name, an id set by hand) it cannot.

// defaultID is this process's default coordinator id.
func defaultID() string {
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s-%d", host, os.Getpid())
	if space := pidSpace(); space != "" {
		id += "-" + space
	}
	return id
}

// pidSpace tags the set of processes this one sees under their pids: a
// hash of the kernel's boot id (one per boot of a machine) and this
// process's pid namespace, "" where either is unknown (not Linux). The
// first pid namespace of every machine has the same number, and a
// container restarted gets a new one.
func pidSpace() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(boot)) + " " + ns))
	return hex.EncodeToString(sum[:4])
}

// holderVerdict is what the id of a lease's holder says of it.
type holderVerdict int

const (
	// holderElsewhere: another host's, or a live process of this one.
	holderElsewhere holderVerdict = iota
	// holderGone: a process of this pid space that no longer runs, or
	// this very process in an earlier run.
	holderGone
	// holderMaybeGone: this host name's, but its pid cannot be judged
	// here: this process's id in an earlier life (a restarted container
	// has a new pid namespace), or a pid of another pid space (another
	// machine of the same name, another container on the host's
	// network). Only its lease going unrefreshed tells.
	holderMaybeGone
)

// judgeHolder says what holder, the id in a lease, is to the coordinator
// with id self, seeing pid space space ("" unknown).
func judgeHolder(holder, self, space string) holderVerdict {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(holder, host+"-")
	pidText, theirs, _ := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	switch {
	case !ok || err != nil || pid <= 0: // not a default id of this host
		if holder == self {
			return holderMaybeGone // an id set by hand, used again
		}
		return holderElsewhere
	case space == "" || theirs != space:
		return holderMaybeGone
	case pid == os.Getpid() || !processAlive(pid):
		return holderGone
	}
	return holderElsewhere
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
