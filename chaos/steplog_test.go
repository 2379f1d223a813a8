package chaos

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

func readTestLog(t *testing.T, name string) Incarnation {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inc, err := ParseLog(name, f)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func TestParseLog(t *testing.T) {
	inc := readTestLog(t, "replay.log")
	want := []Commit{
		{Run: "0123456789abcdef", Step: 3, Check: "3333333333333333", Seqs: []uint64{9, 10, 11, 12}, Firsts: []int{0, 1, 2, 3}, Replay: true},
		{Run: "0123456789abcdef", Step: 4, Check: "4444444444444444", Seqs: []uint64{13, 13, 14, 16}, Firsts: []int{0, 0, 2, 3}},
	}
	if len(inc.Commits) != len(want) {
		t.Fatalf("got %d commits, want %d: %+v", len(inc.Commits), len(want), inc.Commits)
	}
	for i, c := range inc.Commits {
		w := want[i]
		if c.Run != w.Run || c.Step != w.Step || c.Check != w.Check || c.Replay != w.Replay || !slices.Equal(c.Seqs, w.Seqs) || !slices.Equal(c.Firsts, w.Firsts) {
			t.Errorf("commit %d = %+v, want %+v", i, c, w)
		}
	}
}

func TestParseFieldsQuoted(t *testing.T) {
	f := parseFields(`time=x level=WARN msg="a \"b\" = c" err="x y" n=3`)
	if f["msg"] != `a "b" = c` || f["err"] != "x y" || f["n"] != "3" {
		t.Errorf("got %q", f)
	}
}

func TestParseCommitMalformed(t *testing.T) {
	for _, line := range []string{
		`level=DEBUG msg="step committed" run=r step=x check=0011223344556677 seqs="[1]" firsts="[0]" replay=false`,
		`level=DEBUG msg="step committed" run=r step=1 check=0011223344556677 seqs="[1 2]" firsts="[0]" replay=false`,
		`level=DEBUG msg="step committed" run=r step=1 check=0011223344556677 seqs="[1]" replay=false`,
	} {
		if _, ok, err := parseCommit(line); !ok || err == nil {
			t.Errorf("ok %v err %v, want a malformed-line error for %s", ok, err, line)
		}
	}
}

func TestCheckCommitsHolds(t *testing.T) {
	incs := []Incarnation{readTestLog(t, "first.log"), readTestLog(t, "replay.log")}
	if v, steps := CheckCommits(incs, 4, 4); len(v) > 0 || len(steps) != 4 {
		t.Errorf("violations %q, %d steps", v, len(steps))
	}
}

func TestCheckCommitsViolations(t *testing.T) {
	c := func(step uint64, check string, seqs ...uint64) Commit { // a message per shard
		firsts := make([]int, len(seqs))
		for i := range firsts {
			firsts[i] = i
		}
		return Commit{Step: step, Check: check, Seqs: seqs, Firsts: firsts}
	}
	cf := func(step uint64, check string, seqs []uint64, firsts ...int) Commit {
		return Commit{Step: step, Check: check, Seqs: seqs, Firsts: firsts}
	}
	for _, tc := range []struct {
		name string
		incs []Incarnation
		want string
	}{
		{"missing step", []Incarnation{{Name: "a", Commits: []Commit{c(1, "d1", 1, 2)}}}, "missing: step 2"},
		{"divergent replay", []Incarnation{
			{Name: "a", Commits: []Commit{c(1, "d1", 1, 2), c(2, "d2", 3, 4)}},
			{Name: "b", Commits: []Commit{c(2, "dX", 3, 4)}}}, "divergence: step 2"},
		{"other seqs on replay", []Incarnation{
			{Name: "a", Commits: []Commit{c(1, "d1", 1, 2), c(2, "d2", 3, 4)}},
			{Name: "b", Commits: []Commit{c(2, "d2", 3, 5)}}}, "divergence: step 2"},
		{"other firsts on replay", []Incarnation{
			{Name: "a", Commits: []Commit{c(1, "d1", 1, 2), cf(2, "d2", []uint64{3, 3}, 0, 0)}},
			{Name: "b", Commits: []Commit{cf(2, "d2", []uint64{3, 3}, 0, 1)}}}, "divergence: step 2"},
		{"gradient reused", []Incarnation{{Name: "a", Commits: []Commit{c(1, "d1", 1, 2), c(2, "d2", 2, 3)}}}, "reuse: gradient seq 2"},
		{"shard count", []Incarnation{{Name: "a", Commits: []Commit{c(1, "d1", 1), c(2, "d2", 3, 4)}}}, "shards: step 1 combined 1"},
		{"duplicate shard", []Incarnation{{Name: "a", Commits: []Commit{c(1, "d1", 2, 1, 2), c(2, "d2", 3, 4, 5)}}}, "shards: step 1 used gradient seq 2 twice"},
		// One shard's message counted for the next shard too looks, by its
		// sequences alone, like one message carrying both.
		{"one message counted twice", []Incarnation{{Name: "a", Commits: []Commit{cf(1, "d1", []uint64{1, 1}, 0, 1), c(2, "d2", 3, 4)}}}, "shards: step 1 used gradient seq 1 twice"},
		{"sum not shared", []Incarnation{{Name: "a", Commits: []Commit{cf(1, "d1", []uint64{1, 2}, 0, 0), c(2, "d2", 3, 4)}}}, "shards: step 1 shard 1 claims the sum from shard 0 of seq 2"},
		{"sum not from shard 0", []Incarnation{{Name: "a", Commits: []Commit{cf(1, "d1", []uint64{1, 2, 2}, 0, 1, 1), c(2, "d2", 3, 4, 5)}}}, "shards: step 1 shard 2 came from a gradient starting at shard 1"},
		{"order", []Incarnation{{Name: "a", Commits: []Commit{c(2, "d2", 3, 4), c(1, "d1", 1, 2)}}}, "order: a logged step 1 after step 2"},
		{"beyond the run", []Incarnation{{Name: "a", Commits: []Commit{c(1, "d1", 1, 2), c(2, "d2", 3, 4), c(3, "d3", 5, 6)}}}, "range: step 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shards := len(tc.incs[0].Commits[len(tc.incs[0].Commits)-1].Seqs)
			v, _ := CheckCommits(tc.incs, shards, 2)
			if !slices.ContainsFunc(v, func(s string) bool { return strings.HasPrefix(s, tc.want) }) {
				t.Errorf("violations %q, want one starting %q", v, tc.want)
			}
		})
	}
}

// The first shards of a step sent as one message share its sequence.
func TestCheckCommitsTakesFirstShardsInOneMessage(t *testing.T) {
	incs := []Incarnation{{Name: "a", Commits: []Commit{
		{Step: 1, Check: "d1", Seqs: []uint64{1, 1, 1}, Firsts: []int{0, 0, 0}},
		{Step: 2, Check: "d2", Seqs: []uint64{2, 2, 3}, Firsts: []int{0, 0, 2}}}}}
	if v, _ := CheckCommits(incs, 3, 2); len(v) > 0 {
		t.Errorf("violations %q, want none", v)
	}
}

func TestCompareSteps(t *testing.T) {
	base := map[uint64]Commit{1: {Check: "a"}, 2: {Check: "b"}}
	if v := CompareSteps(base, map[uint64]Commit{1: {Check: "a"}, 2: {Check: "b"}}); len(v) > 0 {
		t.Errorf("equal runs: %q", v)
	}
	if v := CompareSteps(base, map[uint64]Commit{2: {Check: "c"}}); len(v) != 1 {
		t.Errorf("differing step 2: %q", v)
	}
}

// TestLeadershipTermsMayRestartTheSteps: a coordinator that lost its lease
// and led again later resumes from a checkpoint; the jump is not an order
// violation, but a jump inside one term still is.
func TestLeadershipTermsMayRestartTheSteps(t *testing.T) {
	line := func(step int) string {
		return fmt.Sprintf(`time=x level=DEBUG msg="step committed" run=r step=%d check=%016x seqs="[%d]" firsts="[0]" replay=false`, step, step, step)
	}
	log := strings.Join([]string{line(1), line(2),
		`time=x level=WARN msg="coordinator: lost the leadership of the run r: the lease expired; starting over from the newest checkpoint, waiting as a standby while another coordinator leads"`,
		line(5), line(6), line(8)}, "\n")
	inc, err := ParseLog("c.0", strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inc.Terms, []int{2}) {
		t.Fatalf("terms %v, want [2]", inc.Terms)
	}
	all, _ := CheckCommits([]Incarnation{inc}, 1, 0)
	var order []string
	for _, v := range all {
		if strings.HasPrefix(v, "order:") {
			order = append(order, v)
		}
	}
	if len(order) != 1 || !strings.Contains(order[0], "step 8 after step 6") {
		t.Fatalf("order violations %v, want only the jump from 6 to 8", order)
	}
}
