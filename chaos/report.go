package chaos

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of Run.
type Report struct {
	Seed           uint64
	Planned        int      // faults planned
	Records        []Record // faults injected, in order
	Steps          uint64   // step of the chaos run's final checkpoint
	Digest         string   // weights sha256 of the chaos run's final checkpoint
	BaselineDigest string   // the same of the fault-free run
	BaselineTook   time.Duration
	Took           time.Duration
	Incarnations   int      // coordinator processes started in the chaos run
	Replays        int      // of them, those that began by replaying the grads stream
	Unexpected     []string // processes that exited without being killed (restarted by supervision)
	Refused        []string // processes that stopped because they started while a server they need was down
	Violations     []string // broken invariants; empty when every promise held
	Dir            string   // where the logs are
}

// OK reports whether every planned fault was injected and survived, no
// process exited unless killed (every process must ride out the faults of
// the others), and every invariant held.
func (r *Report) OK() bool {
	if len(r.Violations) > 0 || len(r.Unexpected) > 0 || len(r.Records) < r.Planned {
		return false
	}
	for _, rec := range r.Records {
		if !rec.Recovered {
			return false
		}
	}
	return true
}

// Table prints one row per fault kind: injected, survived, and the median
// and maximum recovery time of the survivors.
func (r *Report) Table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "kind\tinjected\tsurvived\tmedian recovery\tmax recovery")
	row := func(name string, keep func(Record) bool) {
		var n, ok int
		var times []time.Duration
		for _, rec := range r.Records {
			if !keep(rec) {
				continue
			}
			n++
			if rec.Recovered {
				ok++
				times = append(times, rec.Recovery)
			}
		}
		med, mx := "-", "-"
		if len(times) > 0 {
			slices.Sort(times)
			m := times[len(times)/2]
			if len(times)%2 == 0 {
				m = (m + times[len(times)/2-1]) / 2
			}
			med, mx = round(m).String(), round(times[len(times)-1]).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", name, n, ok, med, mx)
	}
	for _, k := range Kinds {
		row(k.String(), func(rec Record) bool { return rec.Kind == k })
	}
	row("all", func(Record) bool { return true })
	tw.Flush()
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// String is the whole report: summary, table, faults, findings.
func (r *Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.OK() {
		verdict = "FAIL"
	}
	match := "match"
	if r.Digest != r.BaselineDigest {
		match = "DIFFER"
	}
	fmt.Fprintf(&b, "chaos %s: seed %d, %d/%d faults injected, %d steps\n", verdict, r.Seed, len(r.Records), r.Planned, r.Steps)
	fmt.Fprintf(&b, "weights sha256: fault-free %s, chaos %s (%s)\n", r.BaselineDigest, r.Digest, match)
	fmt.Fprintf(&b, "time: fault-free %v, chaos %v; %d coordinator incarnations, %d began with a replay\n\n",
		r.BaselineTook.Round(time.Second), r.Took.Round(time.Second), r.Incarnations, r.Replays)
	b.WriteString(r.Table())
	b.WriteString("(recovery: s3 = store back -> next checkpoint saved; others = kill -> first commit of a new step)\n\nfaults:\n")
	var t0 time.Time
	if len(r.Records) > 0 {
		t0 = r.Records[0].At
	}
	for i, rec := range r.Records {
		status := "recovered in " + round(rec.Recovery).String()
		if !rec.Recovered {
			status = "NOT RECOVERED"
		}
		fmt.Fprintf(&b, "  %2d  +%-8v %-11s %-16s step %-5d down %-7v %s", i+1, rec.At.Sub(t0).Round(100*time.Millisecond), rec.Kind, rec.Target, rec.Step, round(rec.Down), status)
		if rec.Note != "" {
			b.WriteString("  (" + rec.Note + ")")
		}
		b.WriteByte('\n')
	}
	if missed := r.Planned - len(r.Records); missed > 0 && len(r.Violations) == 0 {
		fmt.Fprintf(&b, "\nthe run finished before the last %d planned faults: give it more steps (-epochs, a smaller -batch) or plan fewer faults (-kills)\n", missed)
	}
	if len(r.Unexpected) > 0 {
		fmt.Fprintf(&b, "\nunexpected exits (restarted by supervision; each fails the run):\n")
		for _, u := range r.Unexpected {
			b.WriteString("  " + u + "\n")
		}
	}
	if len(r.Refused) > 0 {
		fmt.Fprintf(&b, "\nstarted during an outage and stopped, as designed (restarted by supervision):\n")
		for _, u := range r.Refused {
			b.WriteString("  " + u + "\n")
		}
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, "\nviolations:\n")
		for _, v := range r.Violations {
			b.WriteString("  " + v + "\n")
		}
	}
	fmt.Fprintf(&b, "\nlogs: %s\n", r.Dir)
	return b.String()
}
