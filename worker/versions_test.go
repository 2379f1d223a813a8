package worker

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/protocol"
)

// A worker keeps the newest commit records of the runs it heard from last, and
// forgets the rest: serving run after run for weeks does not grow it.
func TestVersionsKeepRecentRunsOnly(t *testing.T) {
	v := newVersions()
	send := func(run string, step uint64) {
		p := protocol.Params{Run: run, Step: step, Check: [8]byte{byte(step)}}
		b, _ := p.MarshalBinary()
		v.receive(&nats.Msg{Data: b})
	}
	for r := 0; r < 10; r++ {
		for step := uint64(0); step < 5; step++ {
			send(fmt.Sprintf("run-%d", r), step)
		}
	}
	send("run-6", 5) // heard from again: now the most recent
	if len(v.runs) != runsKept {
		t.Fatalf("%d runs kept, want %d", len(v.runs), runsKept)
	}
	for _, run := range []string{"run-7", "run-8", "run-9", "run-6"} {
		if len(v.runs[run]) != versionsKept || v.get(run, 4) == nil {
			t.Errorf("%s: %d versions kept", run, len(v.runs[run]))
		}
	}
	if v.get("run-6", 5) == nil || v.get("run-6", 3) != nil || v.get("run-5", 4) != nil {
		t.Errorf("kept the wrong versions: %v", v.heard)
	}
}
