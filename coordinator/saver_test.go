package coordinator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A failing save warns once, shows every further attempt at debug level
// (what an operator, or the chaos harness, watches during an outage) and
// says when the store is back.
func TestSaverRetryReportsEveryAttempt(t *testing.T) {
	var logs bytes.Buffer
	s := &saver{run: "r", log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	attempts := 0
	ok := s.retry(context.Background(), "checkpoint", func() error {
		if attempts++; attempts < 4 {
			return errors.New("endpoint unreachable")
		}
		return nil
	})
	if !ok || attempts != 4 {
		t.Fatalf("retry: ok %v after %d attempts", ok, attempts)
	}
	out := logs.String()
	for want, n := range map[string]int{
		"level=WARN msg=\"coordinator: saving checkpoint failed; training goes on":  1,
		"level=DEBUG msg=\"coordinator: saving checkpoint failed again; retrying\"": 2,
		"object store is back; checkpoint saved":                                    1,
		"saving checkpoint failed":                                                  3, // the chaos harness counts these
	} {
		if got := strings.Count(out, want); got != n {
			t.Errorf("%d lines with %q, want %d:\n%s", got, want, n, out)
		}
	}
}
