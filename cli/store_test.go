//go:build linux

package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/coordinator"
	"github.com/jettrain/jettrain/internal/syncbuf"
	"github.com/jettrain/jettrain/model"
)

// A store the embedded NATS server can no longer write ends `coordinator
// start` with one line naming the store and the cause, where its
// publishes would otherwise time out without end; once the server can
// write again, the same command resumes the run and ends with the weights
// of a run that never failed. The process may not grow a file past 1 MiB
// (RLIMIT_FSIZE), which the server's store meets as a full disk would: a
// write cut short, then refused.
func TestStoreWriteFailureStopsTheRunAndLosesNothing(t *testing.T) {
	sets := []string{"dataset=synthetic", "hidden=[32]", "batch_size=64", "epochs=3", "checkpoint_every=16"}
	dir := t.TempDir()
	args := []string{"start", "--workers", "1", "--nats-listen", "127.0.0.1:0", "--quiet", "--data-dir", dir, "--s3-listen", freeAddr(t)}
	for _, s := range sets {
		args = append(args, "--set", s)
	}

	restore := limitFileSize(t, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, stderr, err := execute(t, ctx, args...)
	restore()
	if ctx.Err() != nil {
		t.Fatalf("start did not stop on its own: %v\n%s", err, stderr)
	}
	var se *StoreError
	if !errors.As(err, &se) {
		t.Fatalf("start with an unwritable store: %v, want a StoreError\n%s", err, stderr)
	}
	if msg := err.Error(); !strings.Contains(msg, filepath.Join(dir, "nats")) || !strings.Contains(msg, "file too large") ||
		strings.Contains(msg, "\n") {
		t.Fatalf("error %q: want one line naming the store directory and the cause", msg)
	}

	out, stderr, err := execute(t, ctx, args...)
	if err != nil {
		t.Fatalf("start again: %v\n%s", err, stderr)
	}
	cfg, err := config.Load("", sets)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := model.LoadDataset(cfg.Dataset, "")
	if err != nil {
		t.Fatal(err)
	}
	want, err := coordinator.TrainLocal(ctx, cfg, ds, 0)
	if err != nil {
		t.Fatal(err)
	}
	if digest := hex.EncodeToString(want.Digest[:]); !strings.Contains(out, "complete") || !strings.Contains(out, digest) {
		t.Fatalf("resumed run printed %q, want completion with weights %s", out, digest)
	}
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// limitFileSize keeps this process (and the processes it starts) from
// growing any file past n bytes, until the returned restore is called (at
// the latest when the test ends).
func limitFileSize(t *testing.T, n uint64) (restore func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// A NATS server of its own (not embedded) whose store fails a write stores
// nothing more and tells no client so; a worker's warning of the gradients
// it could not store says what that may mean and what to do.
func TestUnstoredGradientsOnAStoreThatFailsAreExplained(t *testing.T) {
	restore := limitFileSize(t, 1<<20)
	defer restore()
	s := startNATSServer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr syncbuf.Buffer
	root := Coordinator()
	// At debug level, so that a failure shows where the worker stood.
	root.SetArgs([]string{"start", "--nats", s.ClientURL(), "--workers", "1", "--quiet", "--log-level", "debug", "--data-dir", t.TempDir(), "--s3-listen", freeAddr(t),
		"--set", "dataset=synthetic", "--set", "hidden=[32]", "--set", "batch_size=64", "--set", "epochs=3"})
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	const hint = "if its log shows a critical write error, its disk is full or not writable"
	for !strings.Contains(stderr.String(), hint) {
		select {
		case err := <-done:
			t.Fatalf("start ended (%v) without the hint:\n%s", err, lastLines(stderr.String(), 80))
		case <-ctx.Done():
			t.Fatalf("no hint in the warnings:\n%s", lastLines(stderr.String(), 80))
		case <-time.After(50 * time.Millisecond):
		}
	}
	cancel()
	<-done
}
