package worker

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// A report says how many shards the worker computed since the last one,
// of which run and step, how much of the time it waited for tasks and how
// many tasks came again, if any did; a quiet spell after work is reported
// once.
func TestAReportSaysWhatTheWorkerDid(t *testing.T) {
	var logs bytes.Buffer
	w := &Worker{opts: Options{ID: "w1", Log: slog.New(slog.NewTextHandler(&logs, nil))}}
	prev := activity{tasks: 10, idle: time.Second}
	cur := activity{tasks: 22, idle: 3500 * time.Millisecond, run: "run-a", step: 41}
	if quiet := w.logActivity(prev, cur, 10*time.Second, true); quiet {
		t.Fatal("a report of 12 shards says the worker was quiet")
	}
	for _, want := range []string{`msg="worker: shards computed"`, "worker=w1", "shards=12", "in=10s", "run=run-a", "step=41", "waiting=25%"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("the report lacks %s:\n%s", want, logs.String())
		}
	}
	if strings.Contains(logs.String(), "redelivered") {
		t.Fatalf("a report with no task delivered again mentions redeliveries:\n%s", logs.String())
	}
	logs.Reset()
	again := activity{tasks: 30, again: 3, idle: 3500 * time.Millisecond, run: "run-a", step: 43}
	if w.logActivity(cur, again, 10*time.Second, false); !strings.Contains(logs.String(), "redelivered=3") {
		t.Fatalf("a report of 3 tasks delivered again lacks redelivered=3:\n%s", logs.String())
	}

	logs.Reset()
	if quiet := w.logActivity(cur, cur, 10*time.Second, false); !quiet || !strings.Contains(logs.String(), `msg="worker: no tasks"`) {
		t.Fatalf("the first report without tasks: quiet %v, logged %q", quiet, logs.String())
	}
	logs.Reset()
	if quiet := w.logActivity(cur, cur, 10*time.Second, true); !quiet || logs.String() != "" {
		t.Fatalf("the next report without tasks: quiet %v, logged %q", quiet, logs.String())
	}
}

// A worker run with ReportEvery reports the tasks it took, with their run
// and step, while it runs (real JetStream).
func TestAWorkerReportsTheShardsItComputed(t *testing.T) {
	nc, js := startJetStream(t)
	run := startedRun(t, js).Run
	w, logs, stop := runWorkerWith(t, connectNoEcho(t, nc.ConnectedUrl()), slog.LevelInfo, Options{ReportEvery: 20 * time.Millisecond})
	t.Cleanup(stop)
	publishStep0(t, js, run)
	poll(t, logs, "both tasks of step 0 done", func() bool { return w.Tasks() >= 2 })
	want := fmt.Sprintf("run=%s step=0", run)
	poll(t, logs, "a report of step 0's shards", func() bool {
		return strings.Contains(logs.String(), `msg="worker: shards computed"`) && strings.Contains(logs.String(), want)
	})
	poll(t, logs, "a report that no task came", func() bool { return strings.Contains(logs.String(), `msg="worker: no tasks"`) })
}
