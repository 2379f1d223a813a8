package chaos

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// processesNaming lists the live processes (other than this one) whose
// command line mentions dir, as "pid: command line". Every process of a
// run gets its directory in its arguments, so this finds any the harness
// lost track of. It needs /proc and finds nothing without it.
func processesNaming(dir string) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && zombie(st) {
			continue
		}
		out = append(out, e.Name()+": "+strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))))
	}
	return out
}

// zombie reports whether a /proc/<pid>/stat line is of an exited process
// waiting to be reaped (state Z), which holds no resources.
func zombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
