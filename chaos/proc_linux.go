package chaos

import "syscall"

// groupAttr puts a child in its own process group, and has the kernel kill
// it if the harness dies first, so no run leaves servers behind.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
