package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/internal/freeport"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/objstore"
)

// freeAddr is a loopback address nothing listens on, for a server a test
// starts (freeport.Stable: outgoing connections cannot take it meanwhile).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func execute(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := Coordinator()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestStartTrainsEndToEndWithEmbeddedServers(t *testing.T) {
	dir := t.TempDir()
	s3 := freeAddr(t)
	common := []string{"--data-dir", dir, "--s3-listen", s3}
	args := append([]string{"start", "--workers", "2", "--nats-listen", "127.0.0.1:0", "--quiet",
		"--set", "dataset=synthetic", "--set", "hidden=[32]", "--set", "batch_size=64", "--set", "epochs=2", "--set", "checkpoint_every=16"}, common...)
	out, stderr, err := execute(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("start: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "complete") {
		t.Fatalf("start printed %q", out)
	}

	out, stderr, err = execute(t, context.Background(), "inspect", "--json", "--data-dir", dir)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, stderr)
	}
	var in Inspection
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect --json printed %q: %v", out, err)
	}
	if in.Run == "" || in.Step == 0 || in.HistoryLen != 2 || len(in.WeightsSHA256) != 64 {
		t.Fatalf("inspect: %+v", in)
	}
	if !strings.Contains(out, `"weights_sha256"`) || !strings.Contains(out, `"history_len"`) {
		t.Fatalf("inspect --json lacks the contract keys: %s", out)
	}

	out, _, err = execute(t, context.Background(), "history", "--data-dir", dir)
	if err != nil || strings.Count(out, "\n") != 3 {
		t.Fatalf("history: %v\n%s", err, out)
	}

	// The same command again resumes the finished run and exits 0 at once.
	out, stderr, err = execute(t, context.Background(), args...)
	if err != nil || !strings.Contains(out, in.WeightsSHA256) {
		t.Fatalf("restart of a finished run: %v\n%s\n%s", err, out, stderr)
	}
}

func TestBadInputIsOneClearError(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string
		is   error
	}{
		{[]string{"start", "--bogus"}, "unknown flag: --bogus", nil},
		{[]string{"start", "--sched", "fast", "--data-dir", dir}, `unknown scheduling policy "fast"`, nil},
		{[]string{"start", "--ack-wait", "50ms", "--data-dir", dir}, "--ack-wait 50ms: want a second at least", nil},
		{[]string{"start", "--ack-wait", "10", "--data-dir", dir}, `invalid argument "10" for "--ack-wait"`, nil},
		{[]string{"start", "--set", "lerning_rate=0.1", "--data-dir", dir}, `unknown key "lerning_rate"`, nil},
		{[]string{"start", "--nats", "nats://127.0.0.1:1", "--s3-listen", freeAddr(t), "--data-dir", dir}, "127.0.0.1:1", natsconn.ErrUnreachable},
		{[]string{"start", "--s3", "http://127.0.0.1:1", "--data-dir", dir}, "127.0.0.1:1", objstore.ErrUnreachable},
		{[]string{"inspect", "--data-dir", dir}, "no runs", ErrNoRun},
	} {
		_, _, err := execute(t, ctx, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %q, want one line mentioning %q", tc.args, err, tc.want)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v: %v is not %v", tc.args, err, tc.is)
		}
	}
}

// TestStatusShowsLiveProgress reads `status --json` while a run trains:
// the committed state comes from S3, the live step and worker count from
// the coordinator's reports over NATS.
func TestStatusShowsLiveProgress(t *testing.T) {
	dir, natsAddr, s3 := t.TempDir(), freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := execute(t, ctx, "start", "--workers", "2", "--quiet", "--data-dir", dir, "--nats-listen", natsAddr, "--s3-listen", s3,
			"--set", "dataset=synthetic", "--set", "hidden=[16]", "--set", "epochs=100", "--set", "checkpoint_every=5")
		done <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		out, _, err := execute(t, context.Background(), "status", "--json", "--s3", "http://"+s3, "--nats", "nats://"+natsAddr)
		var rows []RunStatus
		if err == nil && json.Unmarshal([]byte(out), &rows) == nil && len(rows) == 1 && rows[0].Live != nil &&
			rows[0].Live.Workers == 2 && rows[0].Committed && rows[0].Live.Step >= rows[0].Step {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the live run with 2 workers: %v %s", err, out)
		}
		select {
		case err := <-done:
			t.Fatalf("the run ended early: %v", err)
		case <-time.After(200 * time.Millisecond): // polling interval
		}
	}
	cancel()
	<-done
}

func TestWorkerRefusesAnUnknownSchedulingPolicy(t *testing.T) {
	cmd := Worker()
	cmd.SetArgs([]string{"--sched", "fast", "--nats", "nats://127.0.0.1:1"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), `unknown scheduling policy "fast"`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want one line naming the policy", err)
	}
}
