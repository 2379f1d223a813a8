package chaos

import (
	"fmt"
	"slices"

	"github.com/jettrain/jettrain/objstore"
)

// violations collects broken invariants, keeping the first few of each
// kind so a systematic break does not drown the report.
type violations struct {
	list  []string
	count map[string]int
}

const perKind = 5

func (v *violations) add(kind, format string, args ...any) {
	if v.count == nil {
		v.count = map[string]int{}
	}
	v.count[kind]++
	switch n := v.count[kind]; {
	case n <= perKind:
		v.list = append(v.list, kind+": "+fmt.Sprintf(format, args...))
	case n == perKind+1:
		v.list = append(v.list, kind+": ... (further ones not listed)")
	}
}

// CheckCommits checks the step log of a run against its promises:
//   - within one incarnation (or one of its leadership terms) steps
//     strictly increase, by one;
//   - every step 1..total was committed, and none beyond total;
//   - every incarnation that logged a step logged the same weights check, the
//     same seqs and firsts for it (a replay rebuilds exactly what was
//     committed);
//   - each step combined exactly shards gradients, each shard's either its
//     own message or one message carrying the sum of shards 0..n-1 (the
//     same sequence, logged with first shard 0, for each of them), and no
//     message (sequence) served two shards otherwise, nor two steps: every
//     (step, shard) contributed exactly once.
//
// It returns the violations, empty when all hold, and the steps by number.
func CheckCommits(incs []Incarnation, shards int, total uint64) ([]string, map[uint64]Commit) {
	var v violations
	steps := map[uint64]Commit{}
	where := map[uint64]string{}
	for _, inc := range incs {
		var last uint64
		for i, c := range inc.Commits {
			if i > 0 && c.Step != last+1 && !slices.Contains(inc.Terms, i) {
				v.add("order", "%s logged step %d after step %d", inc.Name, c.Step, last)
			}
			last = c.Step
			first, seen := steps[c.Step]
			if !seen {
				steps[c.Step], where[c.Step] = c, inc.Name
				continue
			}
			if first.Check != c.Check || !slices.Equal(first.Seqs, c.Seqs) || !slices.Equal(first.Firsts, c.Firsts) {
				v.add("divergence", "step %d: %s logged check %s seqs %v from %v, %s logged check %s seqs %v from %v",
					c.Step, where[c.Step], first.Check, first.Seqs, first.Firsts, inc.Name, c.Check, c.Seqs, c.Firsts)
			}
		}
	}
	usedBy := map[uint64]uint64{}
	for s := uint64(1); s <= total; s++ {
		c, ok := steps[s]
		if !ok {
			v.add("missing", "step %d was never logged as committed", s)
			continue
		}
		if len(c.Seqs) != shards {
			v.add("shards", "step %d combined %d gradients %v, want %d", s, len(c.Seqs), c.Seqs, shards)
		}
		for i, q := range c.Seqs {
			switch first := c.Firsts[i]; {
			case first != i && first != 0:
				v.add("shards", "step %d shard %d came from a gradient starting at shard %d: %v from %v", s, i, first, c.Seqs, c.Firsts)
				continue
			case first == 0 && i > 0:
				// Shards 0..i in one message: the one shard 0 used.
				if q != c.Seqs[0] || c.Firsts[i-1] != 0 {
					v.add("shards", "step %d shard %d claims the sum from shard 0 of seq %d, which shards 0..%d do not share: %v from %v", s, i, q, i-1, c.Seqs, c.Firsts)
				}
				continue
			}
			if other, dup := usedBy[q]; dup {
				if other == s {
					v.add("shards", "step %d used gradient seq %d twice: %v", s, q, c.Seqs)
				} else {
					v.add("reuse", "gradient seq %d served step %d and step %d", q, other, s)
				}
				continue
			}
			usedBy[q] = s
		}
	}
	for s := range steps {
		if s > total || s == 0 {
			v.add("range", "step %d logged, the run has steps 1..%d", s, total)
		}
	}
	return v.list, steps
}

// CompareSteps checks that every step of got has the weights check the fault-free
// run had at that step: faults may cost time, never change the math.
func CompareSteps(base, got map[uint64]Commit) []string {
	var v violations
	keys := make([]uint64, 0, len(got))
	for s := range got {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	for _, s := range keys {
		b, ok := base[s]
		if ok && b.Check != got[s].Check {
			v.add("weights", "step %d has weights %s, the fault-free run had %s", s, got[s].Check, b.Check)
		}
	}
	return v.list
}

// CheckHistory checks history.json: exactly one entry per epoch 0..epochs-1
// in order, each at the step ending its epoch, with the figures of the
// fault-free run (base; nil skips the comparison). Timings may differ.
func CheckHistory(h, base []objstore.HistoryEntry, epochs int, total uint64) []string {
	var v violations
	if len(h) != epochs {
		v.add("history", "%d entries, want one per epoch (%d)", len(h), epochs)
	}
	per := total / uint64(max(epochs, 1))
	for i, e := range h {
		if e.Epoch != i {
			v.add("history", "entry %d is epoch %d", i, e.Epoch)
		}
		if e.Step != uint64(i+1)*per {
			v.add("history", "epoch %d ends at step %d, want %d", e.Epoch, e.Step, uint64(i+1)*per)
		}
		if i < len(base) {
			b := base[i]
			if e.TrainLoss != b.TrainLoss || e.TrainAcc != b.TrainAcc || e.ValidLoss != b.ValidLoss || e.ValidAcc != b.ValidAcc || e.Best != b.Best {
				v.add("history", "epoch %d: train loss %v acc %v valid loss %v acc %v best %v; the fault-free run had %v %v %v %v %v",
					e.Epoch, e.TrainLoss, e.TrainAcc, e.ValidLoss, e.ValidAcc, e.Best, b.TrainLoss, b.TrainAcc, b.ValidLoss, b.ValidAcc, b.Best)
			}
		}
	}
	return v.list
}
