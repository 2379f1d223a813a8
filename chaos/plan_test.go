package chaos

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jettrain/jettrain/objstore"
)

func TestPlanIsSeeded(t *testing.T) {
	a, b := plan(42, 30, Kinds, time.Second), plan(42, 30, Kinds, time.Second)
	if !slices.Equal(a, b) {
		t.Fatal("the same seed gave two plans")
	}
	if slices.Equal(a, plan(43, 30, Kinds, time.Second)) {
		t.Error("seeds 42 and 43 gave the same plan")
	}
}

func TestPlanCoversKindsAndFits(t *testing.T) {
	p := plan(7, 2*len(Kinds), Kinds, 50*time.Millisecond)
	count := map[Kind]int{}
	left := uint64(100)
	for i, f := range p {
		count[f.Kind]++
		g := f.gap(left, len(p)-i)
		if g < 1 || g > left {
			t.Errorf("fault %d: gap %d with %d steps left", i, g, left)
		}
		left -= min(g, left)
		lo, hi := downRange[f.Kind][0], downRange[f.Kind][1]
		if f.Down < lo || f.Down > hi || f.Jitter < 0 || f.Jitter >= 100*time.Millisecond || f.Spread < 0 || f.Spread >= 1 {
			t.Errorf("fault out of range: %v", f)
		}
	}
	if left == 0 {
		t.Error("the faults used up every step of the run")
	}
	for _, k := range Kinds {
		if count[k] != 2 {
			t.Errorf("%v: %d faults in %d, want 2 (two shuffled rounds)", k, count[k], len(p))
		}
	}
}

func TestParseKinds(t *testing.T) {
	k, err := ParseKinds("s3, worker")
	if err != nil || !slices.Equal(k, []Kind{S3Outage, WorkerKill}) {
		t.Errorf("got %v, %v", k, err)
	}
	if _, err := ParseKinds("disk"); err == nil {
		t.Error("unknown kind accepted")
	}
}

func TestCheckHistory(t *testing.T) {
	h := []objstore.HistoryEntry{{Epoch: 0, Step: 10, TrainLoss: 1}, {Epoch: 1, Step: 20, TrainLoss: 0.5}}
	if v := CheckHistory(h, h, 2, 20); len(v) > 0 {
		t.Errorf("good history: %q", v)
	}
	dup := []objstore.HistoryEntry{h[0], h[0], h[1]}
	if v := CheckHistory(dup, h, 2, 20); len(v) == 0 {
		t.Error("a duplicated epoch passed")
	}
	other := []objstore.HistoryEntry{h[0], {Epoch: 1, Step: 20, TrainLoss: 0.6}}
	if v := CheckHistory(other, h, 2, 20); len(v) == 0 {
		t.Error("a different train loss passed")
	}
}

func TestTable(t *testing.T) {
	r := &Report{Planned: 3, Records: []Record{
		{Kind: WorkerKill, Recovered: true, Recovery: time.Second},
		{Kind: WorkerKill, Recovered: true, Recovery: 3 * time.Second},
		{Kind: S3Outage},
	}}
	tab := r.Table()
	for _, want := range []string{"worker       2         2         2s               3s", "s3           1         0         -"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if r.OK() {
		t.Error("a report with an unrecovered fault is OK")
	}
}

// TestAShortRunSaysWhyFaultsAreMissing checks that a report whose run
// finished before its last planned faults fails and says what to change.
func TestAShortRunSaysWhyFaultsAreMissing(t *testing.T) {
	r := &Report{Planned: 3, Digest: "d", BaselineDigest: "d", Records: []Record{
		{Kind: WorkerKill, Recovered: true, Recovery: time.Second},
	}}
	if r.OK() {
		t.Error("a report with 1 of 3 planned faults injected is OK")
	}
	if out := r.String(); !strings.Contains(out, "the run finished before the last 2 planned faults") {
		t.Errorf("the report does not say why faults are missing:\n%s", out)
	}
	r.Violations = []string{"step 5 before fault 2: timed out"}
	if out := r.String(); strings.Contains(out, "the run finished before") {
		t.Errorf("a run that broke off blames its length:\n%s", out)
	}
}
