package chaos

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Commit is one "step committed" line of a coordinator's debug log:
//
//	msg="step committed" run=<sig> step=<n> check=<16 hex> seqs="[s0 s1 s2 s3]" firsts="[f0 f1 f2 f3]" replay=<bool>
//
// Seqs are the grads-stream sequences of the gradient used for each shard,
// in shard order, and Firsts the first shard each of those gradients
// covers: the shard itself, or 0 for one message carrying the sum of shards
// 0..n-1. A restarted coordinator replays the stream and logs again the
// steps it replays, with Replay set.
type Commit struct {
	Run    string
	Step   uint64
	Check  string // the weights check (model.Check), in hex
	Seqs   []uint64
	Firsts []int
	Replay bool
}

// Incarnation is what one coordinator process logged, in order.
type Incarnation struct {
	Name    string // slot and start number, e.g. coordinator-a.2
	Commits []Commit
	// Terms are the indexes into Commits where the process began leading
	// again after losing its lease and waiting as a standby: each term
	// resumes from a checkpoint like a new process.
	Terms []int
}

// Log messages the harness reads.
const (
	msgStepCommitted       = "step committed"
	msgCheckpointCommitted = "checkpoint committed"
	textBackToStandby      = "waiting as a standby"
)

// parseFields splits a slog text line into its key=value pairs; quoted
// values are unquoted. A line that is not in that format yields what could
// be read before the first malformed field.
func parseFields(line string) map[string]string {
	out := map[string]string{}
	s := line
	for {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return out
		}
		key := s[:eq]
		s = s[eq+1:]
		if strings.HasPrefix(s, `"`) {
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return out
			}
			v, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return out
			}
			out[key] = v
			s = s[end+1:]
			continue
		}
		sp := strings.IndexByte(s, ' ')
		if sp < 0 {
			out[key] = s
			return out
		}
		out[key] = s[:sp]
		s = s[sp:]
	}
}

// parseCommit reads a "step committed" line; ok is false for other lines.
// A line with the message but malformed fields is an error: the contract
// the invariants rest on has changed.
func parseCommit(line string) (c Commit, ok bool, err error) {
	if !strings.Contains(line, `msg="`+msgStepCommitted+`"`) {
		return Commit{}, false, nil
	}
	f := parseFields(line)
	if f["msg"] != msgStepCommitted {
		return Commit{}, false, nil
	}
	c.Run, c.Check = f["run"], f["check"]
	if c.Step, err = strconv.ParseUint(f["step"], 10, 64); err != nil {
		return c, true, fmt.Errorf("step committed line without a step: %q", line)
	}
	if c.Replay, err = strconv.ParseBool(f["replay"]); err != nil {
		return c, true, fmt.Errorf("step committed line without replay=: %q", line)
	}
	if len(c.Check) != 16 {
		return c, true, fmt.Errorf("step committed line with check %q, want 16 hex digits: %q", c.Check, line)
	}
	if c.Seqs, err = parseList(f["seqs"], func(w string) (uint64, error) { return strconv.ParseUint(w, 10, 64) }); err != nil {
		return c, true, fmt.Errorf("step committed line with seqs %q: %q", f["seqs"], line)
	}
	c.Firsts, err = parseList(f["firsts"], strconv.Atoi)
	if err != nil || len(c.Firsts) != len(c.Seqs) {
		return c, true, fmt.Errorf("step committed line with firsts %q for seqs %q: %q", f["firsts"], f["seqs"], line)
	}
	return c, true, nil
}

// parseList parses a bracketed, space-separated list, "[1 2 3]".
func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, w := range strings.Fields(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")) {
		v, err := parse(w)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// isSaveFailedLine reports whether line warns that saving a checkpoint
// failed (and will be retried).
func isSaveFailedLine(line string) bool {
	return strings.Contains(line, "saving checkpoint failed")
}

// isCheckpointLine reports whether line says a checkpoint was committed.
func isCheckpointLine(line string) bool {
	return strings.Contains(line, `msg="`+msgCheckpointCommitted+`"`)
}

// ParseLog reads the commits of one coordinator log.
func ParseLog(name string, r io.Reader) (Incarnation, error) {
	inc := Incarnation{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), textBackToStandby) {
			inc.Terms = append(inc.Terms, len(inc.Commits))
		}
		c, ok, err := parseCommit(sc.Text())
		if err != nil {
			return inc, fmt.Errorf("%s: %w", name, err)
		}
		if ok {
			inc.Commits = append(inc.Commits, c)
		}
	}
	return inc, sc.Err()
}
