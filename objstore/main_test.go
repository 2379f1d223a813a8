package objstore

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Tests run against real S3 servers only: the embedded one (always) and a
// separate versitygw process when JETTRAIN_VERSITYGW names its binary
// (.ci/versitygw.sh installs it).
const (
	testAccess = "test-access"
	testSecret = "test-secret-key"
)

var (
	embedded     *Server
	externalURL  string // empty when JETTRAIN_VERSITYGW is unset
	externalSkip string
	bucketSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(parentEnv); dir != "" {
		serveAsParent(dir)
	}
	os.Exit(runTests(m))
}

// parentEnv makes the test binary a plain program that serves dir and
// prints the URL, for TestServerDiesWithParent to kill.
const parentEnv = "OBJSTORE_TEST_PARENT_DIR"

func serveAsParent(dir string) {
	srv, err := Serve(context.Background(), dir, "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(srv.URL())
	select {}
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "objstore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	embedded, err = Serve(ctx, filepath.Join(dir, "embedded"), "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer embedded.Close()

	if bin := os.Getenv("JETTRAIN_VERSITYGW"); bin == "" {
		externalSkip = "JETTRAIN_VERSITYGW is unset: no external versitygw process to test against (.ci/versitygw.sh installs one)"
	} else {
		stop, url, err := startVersitygw(bin, filepath.Join(dir, "external"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "external versitygw:", err)
			return 1
		}
		defer stop()
		externalURL = url
	}
	return m.Run()
}

// startVersitygw runs the versitygw binary as its own process on a free port.
func startVersitygw(bin, dir string) (stop func(), url string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--access", testAccess, "--secret", testSecret, "--port", addr, "--quiet", "posix", dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() { cmd.Process.Kill(); <-exited }
	url = "http://" + addr
	if err := waitHTTP(context.Background(), url, exited, time.Now().Add(20*time.Second)); err != nil {
		stop()
		return nil, "", fmt.Errorf("%v; output: %s", err, out.String())
	}
	return stop, url, nil
}

// servers runs f once per real server as subtests "embedded" and
// "external"; the latter is skipped with the reason when there is none.
func servers(t *testing.T, f func(t *testing.T, endpoint string)) {
	t.Run("embedded", func(t *testing.T) { f(t, embedded.URL()) })
	t.Run("external", func(t *testing.T) {
		if externalURL == "" {
			t.Skip(externalSkip)
		}
		f(t, externalURL)
	})
}

// testConfig returns a Config for a fresh bucket on endpoint.
func testConfig(endpoint string) Config {
	return Config{Endpoint: endpoint, AccessKey: testAccess, SecretKey: testSecret,
		Bucket: fmt.Sprintf("test-%d-%d", os.Getpid(), bucketSeq.Add(1)), Keep: 3}
}

func openTest(t testing.TB, endpoint string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, testConfig(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
