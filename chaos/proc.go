package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one child OS process, started in a process group of its own so
// that a kill takes everything it may have started with it. Its stdout and
// stderr go to a log file, line by line through onLine.
type proc struct {
	name    string
	cmd     *exec.Cmd
	pgid    int
	started time.Time
	log     string // path of the log file
	done    chan struct{}

	mu   sync.Mutex
	err  error // from Wait, once done is closed
	tail []string
}

// startProc runs bin with args and env (added to the harness's own
// environment), logging to logPath. onLine, if not nil, sees every complete
// output line with the time it was read.
func startProc(name, bin string, args, env []string, logPath string, onLine func(line string, at time.Time)) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, log: logPath, done: make(chan struct{})}
	lw := &lineWriter{file: f, onLine: func(line string, at time.Time) {
		p.remember(line)
		if onLine != nil {
			onLine(line, at)
		}
	}}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = groupAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("chaos: starting %s: %w", name, err)
	}
	p.cmd, p.pgid, p.started = cmd, cmd.Process.Pid, time.Now()
	go func() {
		err := cmd.Wait()
		lw.flush()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and its exit code (-1 when
// a signal ended it).
func (p *proc) exited() (bool, int) {
	select {
	case <-p.done:
	default:
		return false, 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		return true, 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return true, ee.ExitCode()
	}
	return true, -1
}

// kill sends SIGKILL to the whole process group and waits until the
// process is reaped, at most wait.
func (p *proc) kill(wait time.Duration) error {
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("chaos: %s (pid %d) still running %v after SIGKILL", p.name, p.pgid, wait)
	}
}

// groupAlive reports whether any process of p's group is still running.
func (p *proc) groupAlive() bool {
	return syscall.Kill(-p.pgid, 0) == nil
}

const tailLines = 12

func (p *proc) remember(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.tail) == tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, line)
}

// lastLines returns the newest output lines, for reports.
func (p *proc) lastLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.tail...)
}

// lineWriter copies a child's output to a file and hands each complete
// line to onLine. exec calls Write from one goroutine per stream; the
// mutex covers stdout and stderr sharing one writer.
type lineWriter struct {
	mu     sync.Mutex
	file   *os.File
	buf    []byte
	onLine func(string, time.Time)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, _ = w.file.Write(b)
	now := time.Now()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.onLine(string(w.buf[:i]), now)
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.onLine(string(w.buf), time.Now())
		w.buf = nil
	}
}
