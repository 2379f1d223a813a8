package chaos

import (
	"fmt"
	"path/filepath"
	"time"
)

// role is what a jettrain process does in the run.
type role int

const (
	coordinatorRole role = iota
	workerRole
)

func (r role) String() string {
	if r == coordinatorRole {
		return "coordinator"
	}
	return "worker"
}

// node is a jettrain coordinator or worker slot. Each start is a new
// incarnation with its own log file; the harness restarts a slot after a
// kill it injected, and also after an exit it did not cause (recorded as
// unexpected: a supervisor such as systemd would do the same).
type node struct {
	name string // coordinator-a, worker-2
	role role
	bin  string
	args []string
	env  []string
	dir  string
	inc  int // incarnations started
	proc *proc
	down bool // killed on purpose; supervision restarts it only at restartAt
	// restartAt is when a slot killed by a fault comes back; zero = never
	// (the run is over or the slot finished it).
	restartAt time.Time
	onOut     func(n *node, inc int, line string, at time.Time)

	exitedAt time.Time // when supervision saw the current proc end
}

// incName names incarnation i of the slot, as in its log file name.
func (n *node) incName(i int) string { return fmt.Sprintf("%s.%d", n.name, i) }

func (n *node) logPath(i int) string { return filepath.Join(n.dir, n.incName(i)+".log") }

func (n *node) start() error {
	inc := n.inc
	p, err := startProc(n.incName(inc), n.bin, n.args, n.env, n.logPath(inc), func(line string, at time.Time) {
		if n.onOut != nil {
			n.onOut(n, inc, line, at)
		}
	})
	if err != nil {
		return err
	}
	n.inc++
	n.proc, n.down, n.exitedAt, n.restartAt = p, false, time.Time{}, time.Time{}
	return nil
}

// alive reports whether the current incarnation runs.
func (n *node) alive() bool {
	if n.proc == nil {
		return false
	}
	done, _ := n.proc.exited()
	return !done
}
