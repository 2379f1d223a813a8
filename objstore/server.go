package objstore

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is an S3 endpoint served from a local directory by versitygw's
// posix backend (see Serve).
type Server struct {
	url   string
	dir   string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the server process has exited
	werr  error         // its exit status, valid after done

	closeOnce sync.Once
	closeErr  error
}

// ServeOptions are the less common settings of ServeWith.
type ServeOptions struct {
	Region string // default "us-east-1"
	// ReadOnly rejects every write with AccessDenied (objstore reports
	// ErrReadOnly); useful to inspect a run without touching it.
	ReadOnly bool
	// StartTimeout bounds the wait for the server to answer (default 30s).
	StartTimeout time.Duration
}

// Serve starts an S3 server for dir on addr ("127.0.0.1:9000"; port 0
// picks a free port) with one account (accessKey, secretKey), and returns
// once it answers HTTP. Buckets are directories under dir/buckets; object
// metadata lives in user.* extended attributes, or in dir/meta on file
// systems without them. A relative dir is resolved against the current
// directory before anything else happens.
//
// The server runs in a child process: the running executable started
// again, which this package's init turns into the server (see the package
// documentation). That keeps versitygw's process-wide state — it changes
// the working directory to its root and allows one instance per process —
// out of the caller's process. The child exits when Close is called, when
// ctx is done, or when this process dies (it watches a pipe from it).
func Serve(ctx context.Context, dir, addr, accessKey, secretKey string) (*Server, error) {
	return ServeWith(ctx, dir, addr, accessKey, secretKey, ServeOptions{})
}

// ServeWith is Serve with options.
func ServeWith(ctx context.Context, dir, addr, accessKey, secretKey string, opts ServeOptions) (*Server, error) {
	if accessKey == "" || secretKey == "" {
		return nil, fmt.Errorf("%w: s3 server: access key and secret key are required", ErrInvalid)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%w: s3 server listen address %q: want host:port, e.g. 127.0.0.1:9000", ErrInvalid, addr)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 server directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, "buckets"), 0o755); err != nil {
		return nil, fmt.Errorf("objstore: s3 server directory: %w", err)
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	attempts := 1
	if port == "0" {
		attempts = 3 // a port picked free can be taken before the server binds it
	}
	for i := 0; ; i++ {
		s, err := start(ctx, childConfig{Dir: abs, Host: host, Port: port, Access: accessKey, Secret: secretKey,
			Region: opts.Region, ReadOnly: opts.ReadOnly}, opts.StartTimeout)
		if err == nil || i+1 == attempts || ctx.Err() != nil {
			return s, err
		}
	}
}

func start(ctx context.Context, cfg childConfig, timeout time.Duration) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 server: locating this executable: %w", err)
	}
	if runtime.GOOS == "linux" {
		exe = "/proc/self/exe" // still this program if its file was replaced or deleted
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 server: %w", err)
	}
	defer statusR.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Dir = cfg.Dir
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		statusW.Close()
		return nil, fmt.Errorf("objstore: s3 server: %w", err)
	}
	if err := cmd.Start(); err != nil {
		statusW.Close()
		return nil, fmt.Errorf("objstore: s3 server: starting %s: %w", exe, err)
	}
	statusW.Close()
	s := &Server{dir: cfg.Dir, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() { s.werr = cmd.Wait(); close(s.done) }()
	line, _ := json.Marshal(cfg)
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		s.Close()
		return nil, fmt.Errorf("objstore: s3 server: sending its configuration: %w", err)
	}

	type status struct {
		line string
		err  error
	}
	got := make(chan status, 1)
	go func() {
		l, err := bufio.NewReader(statusR).ReadString('\n')
		got <- status{strings.TrimSpace(l), err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var st status
	select {
	case st = <-got:
	case <-timer.C:
		s.Close()
		return nil, fmt.Errorf("objstore: s3 server on %s:%s did not start within %v", cfg.Host, cfg.Port, timeout)
	case <-ctx.Done():
		s.Close()
		return nil, ctx.Err()
	}
	addr, ok := strings.CutPrefix(st.line, "listening ")
	if !ok {
		s.Close()
		msg, _ := strings.CutPrefix(st.line, "error ")
		if msg == "" {
			msg = fmt.Sprintf("exited before listening (%v)", st.err)
		}
		return nil, fmt.Errorf("objstore: s3 server on %s:%s: %s", cfg.Host, cfg.Port, msg)
	}
	s.url = "http://" + addr
	if err := waitHTTP(ctx, s.url, s.done, time.Now().Add(timeout)); err != nil {
		s.Close()
		return nil, fmt.Errorf("objstore: s3 server at %s: %w", s.url, err)
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// waitHTTP polls url until any HTTP answer arrives (an unsigned request is
// answered 403, which is fine), the process exits, or the deadline passes.
func waitHTTP(ctx context.Context, url string, exited <-chan struct{}, deadline time.Time) error {
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering: %w", err)
		}
		select {
		case <-exited:
			return errors.New("exited while starting")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// URL returns the endpoint, "http://host:port".
func (s *Server) URL() string { return s.url }

// Dir returns the absolute data directory.
func (s *Server) Dir() string { return s.dir }

// Pid returns the server process id (fault-injection tests kill it).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// CPU is the user and system CPU time the server process has used so far,
// where the system tells it (Linux's /proc, in 10 ms ticks): the server is
// a process of its own, so its work is not in this process's usage.
// Benchmarks report it.
func (s *Server) CPU() (time.Duration, bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Pid()))
	if err != nil {
		return 0, false
	}
	// utime and stime are the 12th and 13th fields after the command
	// name, which is in parentheses and may hold spaces.
	rest := string(raw)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, false
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(user+sys) * 10 * time.Millisecond, true
}

// Done is closed when the server process has exited, for any reason.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server: it closes the pipe the server watches, waits up
// to 5s for a clean exit, then kills it. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stdin.Close()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
			s.closeErr = errors.New("objstore: s3 server did not stop within 5s; killed")
		}
	})
	return s.closeErr
}
