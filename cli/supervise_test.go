package cli

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/internal/syncbuf"
)

// TestAnInProcessWorkerThatStopsIsStartedAgain: an in-process worker that
// stops with an error is logged at once and started again, until it runs
// to the end of its context; one that ends cleanly is not started again.
func TestAnInProcessWorkerThatStopsIsStartedAgain(t *testing.T) {
	var logs syncbuf.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	starts := 0
	err := superviseWorker(context.Background(), log, time.Millisecond, func(context.Context) error {
		starts++
		if starts < 3 {
			return errors.New("natsconn: server unreachable")
		}
		return nil
	})
	if err != nil || starts != 3 {
		t.Fatalf("supervised worker: %d starts, ended with %v; want 3 starts and nil", starts, err)
	}
	if n := strings.Count(logs.String(), "an in-process worker stopped; starting it again"); n != 2 {
		t.Fatalf("want the two stops logged, got:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "server unreachable") {
		t.Fatalf("the log does not say why the worker stopped:\n%s", logs.String())
	}

	// Stopped by its context, it is not started again.
	ctx, cancel := context.WithCancel(context.Background())
	starts = 0
	err = superviseWorker(ctx, log, time.Hour, func(context.Context) error {
		starts++
		cancel()
		return context.Canceled
	})
	if starts != 1 || !errors.Is(err, context.Canceled) {
		t.Fatalf("a worker stopped with its context: %d starts, %v", starts, err)
	}
}
