package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jettrain/jettrain/internal/freeport"
)

// Credentials the harness gives versitygw and, through the environment,
// every coordinator.
const (
	s3Access = "chaos-access"
	s3Secret = "chaos-secret-key"
)

// s3Node is a versitygw process serving a posix directory on a fixed port;
// killed and started again it serves the same objects.
type s3Node struct {
	bin      string
	dir      string // data under dir/data, logs in dir
	port     int
	restarts int
	proc     *proc
}

func newS3(bin, dir string) (*s3Node, error) {
	port, err := freeport.Stable()
	if err != nil {
		return nil, err
	}
	s := &s3Node{bin: bin, dir: dir, port: port}
	return s, os.MkdirAll(filepath.Join(dir, "data"), 0o755)
}

func (s *s3Node) url() string { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }

func (s *s3Node) start() error {
	args := []string{"--access", s3Access, "--secret", s3Secret, "--port", fmt.Sprintf("127.0.0.1:%d", s.port), "--quiet", "posix", filepath.Join(s.dir, "data")}
	p, err := startProc("s3", s.bin, args, nil, filepath.Join(s.dir, fmt.Sprintf("versitygw.%d.log", s.restarts)), nil)
	if err != nil {
		return err
	}
	s.proc = p
	s.restarts++
	return nil
}

// ready returns nil once the server answers HTTP (any status: an anonymous
// request is refused, which proves it listens).
func (s *s3Node) ready() error {
	if done, code := s.proc.exited(); done {
		return fmt.Errorf("versitygw exited with code %d: %s", code, strings.Join(s.proc.lastLines(), " | "))
	}
	return httpUp(s.url(), 600)
}

// env is what a coordinator needs to reach the store.
func (s *s3Node) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s3Access, "AWS_SECRET_ACCESS_KEY=" + s3Secret}
}
