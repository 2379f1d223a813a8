package objstore

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/internal/faultproxy"
)

func oneLineNaming(t *testing.T, err error, parts ...string) {
	t.Helper()
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not name %q", msg, p)
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		for _, tc := range []struct{ name, access, secret string }{
			{"wrong secret", testAccess, "not-the-secret"},
			{"unknown access key", "nobody", testSecret},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cfg := testConfig(endpoint)
				cfg.AccessKey, cfg.SecretKey = tc.access, tc.secret
				_, err := Open(testCtx(t), cfg)
				if !errors.Is(err, ErrCredentials) {
					t.Fatalf("Open: %v, want ErrCredentials", err)
				}
				oneLineNaming(t, err, endpoint, cfg.Bucket, "credentials")
				t.Log(err)
			})
		}
	})
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	cfg := testConfig(endpoint)
	cfg.Timeout = time.Second
	start := time.Now()
	_, err = Open(context.Background(), cfg)
	took := time.Since(start)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Open: %v, want ErrUnreachable", err)
	}
	oneLineNaming(t, err, endpoint, cfg.Bucket)
	if took > 5*time.Second {
		t.Fatalf("took %v to give up", took)
	}
	t.Logf("%v (after %v)", err, took.Round(time.Millisecond))
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "127.0.0.1:9000", AccessKey: "a", SecretKey: "b"},
		{Endpoint: "ftp://x", AccessKey: "a", SecretKey: "b"},
		{Endpoint: "http://x/path", AccessKey: "a", SecretKey: "b"},
		{Endpoint: "http://x", SecretKey: "b"},
		{Endpoint: "http://x", AccessKey: "a", SecretKey: "b", Bucket: "Bad_Bucket"},
		{Endpoint: "http://x", AccessKey: "a", SecretKey: "b", Keep: -1},
	} {
		if err := cfg.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", cfg, err)
		}
	}
	if err := (Config{Endpoint: "https://s3.example.com", AccessKey: "a", SecretKey: "b"}).Validate(); err != nil {
		t.Fatal(err)
	}
}

// A read-only endpoint (versitygw's read-only mode answers AccessDenied to
// every write, as a bucket policy denying s3:PutObject would): Open works,
// reads work, every write is ErrReadOnly naming the key, and a missing
// bucket is ErrNoBucket. versitygw's single-account root bypasses bucket
// policies, so read-only mode is how its AccessDenied is provoked here.
func TestReadOnly(t *testing.T) {
	ctx := testCtx(t)
	dir := t.TempDir()
	rw, err := Serve(ctx, dir, "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(rw.URL())
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, testCheckpoint(10, 1)); err != nil {
		t.Fatal(err)
	}
	rw.Close()

	ro, err := ServeWith(ctx, dir, "127.0.0.1:0", testAccess, testSecret, ServeOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	cfg.Endpoint = ro.URL()
	s, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open on a read-only endpoint: %v", err)
	}
	if _, _, err := s.Latest(ctx, testRun, nil); err != nil {
		t.Fatalf("Latest on a read-only endpoint: %v", err)
	}
	_, err = s.Commit(ctx, testCheckpoint(20, 1))
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Commit: %v, want ErrReadOnly", err)
	}
	oneLineNaming(t, err, ro.URL(), cfg.Bucket, CheckpointKey(testRun, 20))
	t.Log(err)
	if err := s.PutConfig(ctx, testRun, []byte("{}")); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("PutConfig: %v, want ErrReadOnly", err)
	}

	missing := cfg
	missing.Bucket = "no-such-bucket"
	_, err = Open(ctx, missing)
	if !errors.Is(err, ErrNoBucket) {
		t.Fatalf("Open of a missing bucket without the right to create it: %v, want ErrNoBucket", err)
	}
	oneLineNaming(t, err, ro.URL(), "no-such-bucket")
	t.Log(err)
}

func TestServeTwiceAndRelativeDir(t *testing.T) {
	ctx := testCtx(t)
	t.Chdir(t.TempDir())
	a, err := Serve(ctx, "rel", "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !filepath.IsAbs(a.Dir()) {
		t.Fatalf("Dir %q is not absolute", a.Dir())
	}
	b, err := Serve(ctx, "rel2", "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		t.Fatalf("second server in one process: %v", err)
	}
	defer b.Close()
	// The same address twice is an error naming it.
	host := strings.TrimPrefix(a.URL(), "http://")
	if _, err := Serve(ctx, "rel3", host, testAccess, testSecret); err == nil || !strings.Contains(err.Error(), host) {
		t.Fatalf("serving on a taken address: %v", err)
	}
	for _, srv := range []*Server{a, b} {
		s := openTest(t, srv.URL())
		if _, err := s.Commit(ctx, testCheckpoint(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("Close returned before the server exited")
	}
	// A cancelled context stops the server too.
	cctx, cancel := context.WithCancel(ctx)
	c, err := Serve(cctx, "rel4", "127.0.0.1:0", testAccess, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("server still running 10s after its context was cancelled")
	}
}

// kill -9 of the process that called Serve stops the server too, so a
// restarted coordinator finds its address free.
func TestServerDiesWithParent(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), parentEnv+"="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://") {
		cmd.Process.Kill()
		t.Fatalf("parent said %q, %v", line, err)
	}
	url := strings.TrimSpace(line)
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second)
		if err != nil {
			return // refused: the server is gone
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("server at %s still answers 10s after its parent was killed", url)
		}
		time.Sleep(20 * time.Millisecond) // polling a port, not synchronizing
	}
}

// A server answering 429, 500, 502, 503 or 504 (starting, throttling,
// overloaded, failing) gives ErrUnavailable once the client's retries are
// spent, with or without an S3 error document; 501, 505 and 507 do not. The
// store reads and writes again once the server answers.
func TestServerErrorsAreUnavailable(t *testing.T) {
	ctx := testCtx(t)
	p, s := storeBehindProxy(t)
	cfg := s.cfg
	if _, err := s.Commit(ctx, testCheckpoint(10, 1)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status int
		code   string
	}{{503, "ServiceUnavailable"}, {503, "SlowDown"}, {500, "InternalError"}, {429, "TooManyRequests"}, {502, ""}, {504, ""}} {
		p.Fail(tc.status, tc.code)
		before := p.Refused()
		_, _, err := s.Latest(ctx, testRun, nil)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Latest from a server answering %d %q: %v, want ErrUnavailable", tc.status, tc.code, err)
		}
		oneLineNaming(t, err, p.URL(), cfg.Bucket)
		if n := p.Refused() - before; n < 2 {
			t.Fatalf("the client asked %d times before giving up, want its retries too", n)
		}
		before = p.Refused()
		_, err = s.Commit(ctx, testCheckpoint(20, 1))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Commit to a server answering %d %q: %v, want ErrUnavailable", tc.status, tc.code, err)
		}
		if n := p.Refused() - before; n != int64(s.cfg.MaxRetries)+1 {
			t.Fatalf("the put was tried %d times before giving up, want %d", n, s.cfg.MaxRetries+1)
		}
		t.Log(err)
	}
	// A store that lacks a feature, or is full, does not get better by
	// itself: not ErrUnavailable.
	for _, tc := range []struct {
		status int
		code   string
	}{{501, "NotImplemented"}, {507, "XMinioStorageFull"}, {505, ""}} {
		p.Fail(tc.status, tc.code)
		if _, err := s.Commit(ctx, testCheckpoint(20, 1)); err == nil || errors.Is(err, ErrUnavailable) {
			t.Fatalf("Commit to a server answering %d %q: %v, want an error other than ErrUnavailable", tc.status, tc.code, err)
		}
	}
	p.Pass()
	if ck, _, err := s.Latest(ctx, testRun, nil); err != nil || ck.Step != 10 {
		t.Fatalf("Latest once the server answers again: step %v, %v; want the checkpoint of step 10", ck, err)
	}
}

// TestAPutRefusedOnceIsTriedAgain: a put the server refuses while it
// restarts is tried again, with the whole body, and stored.
func TestAPutRefusedOnceIsTriedAgain(t *testing.T) {
	ctx := testCtx(t)
	p, s := storeBehindProxy(t)
	p.Fail(503, "ServiceUnavailable")
	done := make(chan error, 1)
	go func() {
		_, err := s.Commit(ctx, testCheckpoint(10, 1))
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); p.Refused() == 0; time.Sleep(time.Millisecond) { // polling
		if time.Now().After(deadline) {
			t.Fatal("the put never reached the server")
		}
	}
	p.Pass() // the next try, 200 ms on, is stored
	if err := <-done; err != nil {
		t.Fatalf("Commit once the server answers again: %v", err)
	}
	if ck, _, err := s.Latest(ctx, testRun, nil); err != nil || ck.Step != 10 {
		t.Fatalf("Latest: step %v, %v; want the checkpoint of step 10", ck, err)
	}
}

// storeBehindProxy opens a store on the embedded server through a fault
// proxy, closed when the test ends.
func storeBehindProxy(t *testing.T) (*faultproxy.Proxy, *Store) {
	t.Helper()
	p, err := faultproxy.New(embedded.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s, err := Open(testCtx(t), testConfig(p.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}
