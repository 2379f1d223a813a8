package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// restartDelay is how long supervision waits before starting again a
// process that exited on its own.
const restartDelay = time.Second

// cluster is every process of one run: NATS, versitygw, coordinators and
// workers, each a separate OS process in its own process group. It is
// driven from one goroutine; only the timeline is shared with the output
// readers.
type cluster struct {
	o       *Options
	dir     string
	nats    []*natsNode
	s3      *s3Node
	coords  []*node
	workers []*node
	tl      *timeline
	procs   []*proc        // every process ever started, for the leftover check
	killed  map[*proc]bool // servers killed on purpose, not to be restarted by supervision

	finished   bool // a coordinator exited 0
	finishedAt time.Time
	unexpected []string // exits nobody caused: broken promises
	refused    []string // exits of processes started while a server they need was down
	outages    []outage
}

func newCluster(o *Options, dir string) (*cluster, error) {
	c := &cluster{o: o, dir: dir, tl: newTimeline(), killed: map[*proc]bool{}}
	n := 1
	if o.Cluster {
		n = 3
	}
	var err error
	if c.nats, err = newNATS(o.NATSServer, dir, n, o.MaxPayload); err != nil {
		return nil, err
	}
	if c.s3, err = newS3(o.Versitygw, filepath.Join(dir, "s3")); err != nil {
		return nil, err
	}
	urls := clientURLs(c.nats)
	var sets []string
	for _, s := range o.config() {
		sets = append(sets, "--set", s)
	}
	for i := 0; i < o.Coordinators; i++ {
		name := fmt.Sprintf("coordinator-%c", 'a'+i)
		args := append([]string{"start", "--nats", urls, "--s3", c.s3.url(), "--data-dir", filepath.Join(dir, name),
			"--log-level", "debug", "--quiet"}, sets...)
		if o.Cluster {
			args = append(args, "--replicas", "3")
		}
		if o.InProcess > 0 {
			args = append(args, "--workers", fmt.Sprint(o.InProcess))
		}
		c.coords = append(c.coords, &node{name: name, role: coordinatorRole, bin: o.Coordinator, args: args, env: c.s3.env(),
			dir: filepath.Join(dir, "logs"), onOut: func(n *node, inc int, line string, at time.Time) { c.tl.line(n.name, inc, line, at) }})
	}
	for i := 0; i < o.Workers; i++ {
		name := fmt.Sprintf("worker-%d", i)
		args := []string{"--nats", urls, "--log-level", "debug", "--data-dir", filepath.Join(dir, name)}
		c.workers = append(c.workers, &node{name: name, role: workerRole, bin: o.Worker, args: args, dir: filepath.Join(dir, "logs")})
	}
	return c, os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
}

func (c *cluster) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, "%s chaos: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// start brings up the servers, waits until they serve, then starts the
// coordinators and the workers.
func (c *cluster) start(ctx context.Context) error {
	for _, nd := range c.nats {
		if err := c.startNATS(nd); err != nil {
			return err
		}
	}
	for _, nd := range c.nats {
		if err := waitFor(ctx, time.Minute, nd.name+" ready", nil, nd.ready); err != nil {
			return err
		}
	}
	if err := c.startS3(ctx); err != nil {
		return err
	}
	for _, n := range append(append([]*node(nil), c.coords...), c.workers...) {
		if err := c.startNode(n); err != nil {
			return err
		}
	}
	return nil
}

func (c *cluster) startNATS(nd *natsNode) error {
	if err := nd.start(); err != nil {
		return err
	}
	c.procs = append(c.procs, nd.proc)
	return nil
}

func (c *cluster) startS3(ctx context.Context) error {
	if err := c.s3.start(); err != nil {
		return err
	}
	c.procs = append(c.procs, c.s3.proc)
	return waitFor(ctx, time.Minute, "versitygw ready", nil, c.s3.ready)
}

func (c *cluster) startNode(n *node) error {
	if err := n.start(); err != nil {
		return err
	}
	c.procs = append(c.procs, n.proc)
	return nil
}

// tick supervises: it notices the coordinator that finished the run, and
// records and restarts any process that exited without being killed by
// the harness.
func (c *cluster) tick() {
	now := time.Now()
	for _, n := range append(append([]*node(nil), c.coords...), c.workers...) {
		if n.proc == nil {
			continue
		}
		if n.down {
			if !c.finished && !n.restartAt.IsZero() && !now.Before(n.restartAt) {
				if err := c.startNode(n); err != nil {
					c.unexpected = append(c.unexpected, fmt.Sprintf("restarting %s: %v", n.name, err))
				}
			}
			continue
		}
		done, code := n.proc.exited()
		if !done {
			continue
		}
		if n.exitedAt.IsZero() {
			n.exitedAt = now
			if n.role == coordinatorRole && code == 0 {
				if !c.finished {
					c.finished, c.finishedAt = true, now
					c.logf("%s finished the run (exit 0) at step %d", n.incName(n.inc-1), c.tl.progress())
				}
				n.down = true
				continue
			}
			msg := fmt.Sprintf("%s exited with code %d at step %d: %s", n.incName(n.inc-1), code, c.tl.progress(), summary(n.proc.lastLines()))
			if server := c.refusedInOutage(n, now); server != "" {
				// A process that cannot reach a server when it starts
				// stops with one clear line, by design; supervision
				// starts it again.
				c.refused = append(c.refused, msg+" (started while "+server+" was down)")
				c.logf("refused to start: %s", msg)
			} else {
				c.unexpected = append(c.unexpected, msg)
				c.logf("UNEXPECTED: %s", msg)
			}
		}
		if !c.finished && now.Sub(n.exitedAt) >= restartDelay {
			if err := c.startNode(n); err != nil {
				c.unexpected = append(c.unexpected, fmt.Sprintf("restarting %s: %v", n.name, err))
			}
		}
	}
	for _, nd := range c.nats {
		if nd.proc == nil || c.killed[nd.proc] {
			continue
		}
		if done, code := nd.proc.exited(); done {
			c.unexpected = append(c.unexpected, fmt.Sprintf("%s exited with code %d: %s", nd.name, code, summary(nd.proc.lastLines())))
			_ = c.startNATS(nd)
		}
	}
	if p := c.s3.proc; p != nil && !c.killed[p] {
		if done, code := p.exited(); done {
			c.unexpected = append(c.unexpected, fmt.Sprintf("versitygw exited with code %d: %s", code, summary(p.lastLines())))
			if err := c.s3.start(); err == nil {
				c.procs = append(c.procs, c.s3.proc)
			}
		}
	}
}

// outage is a time a server was down because of a fault: "nats" (the
// only NATS server) or "s3". A zero to means it is still down.
type outage struct {
	server   string
	from, to time.Time
}

func (c *cluster) outageBegins(server string) {
	c.outages = append(c.outages, outage{server: server, from: time.Now()})
}

func (c *cluster) outageEnds() { c.outages[len(c.outages)-1].to = time.Now() }

// startedInOutage names a server n's current incarnation needs (NATS for
// all, S3 for coordinators) that was down when it started, or "".
func (c *cluster) startedInOutage(n *node) string {
	return c.overlaps(n, n.proc.started, n.proc.started)
}

// refusedInOutage names the server whose outage explains n's exit: n
// started during it, or n's start-up (connecting to its servers) ran into
// it and n stopped with an unreachable-server line, as designed.
func (c *cluster) refusedInOutage(n *node, exited time.Time) string {
	if server := c.startedInOutage(n); server != "" {
		return server
	}
	last := strings.Join(n.proc.lastLines(), "\n")
	if !strings.Contains(last, "unreachable") || exited.Sub(n.proc.started) > startupWindow {
		return "" // a process past its start-up must ride outages out
	}
	return c.overlaps(n, n.proc.started, exited)
}

// startupWindow bounds how long after its start a process may still be
// connecting to its servers.
const startupWindow = 10 * time.Second

// overlaps names a server n needs that was down at some time in [from, to].
func (c *cluster) overlaps(n *node, from, to time.Time) string {
	t := from
	for _, o := range c.outages {
		if o.server == "s3" && n.role != coordinatorRole {
			continue
		}
		if !to.Before(o.from) && (o.to.IsZero() || !t.After(o.to)) {
			return o.server
		}
	}
	return ""
}

// crashLoop is how many unexpected exits end a run early: a process that
// cannot start is a failure to report, not to retry for the whole timeout.
const crashLoop = 20

// crashLooping reports whether supervision has given up.
func (c *cluster) crashLooping() error {
	if n := len(c.unexpected) + len(c.refused); n >= crashLoop {
		return fmt.Errorf("chaos: %d processes exited on their own; giving up", n)
	}
	return nil
}

// summary is the gist of a dead process's last output: a panic or fatal
// error line if there is one, and the last line.
func summary(lines []string) string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			out = append(out, l)
			break
		}
	}
	if n := len(lines); n > 0 && (len(out) == 0 || out[0] != lines[n-1]) {
		out = append(out, lines[n-1])
	}
	return strings.Join(out, " ... ")
}

// killServer kills a NATS or versitygw process on purpose: supervision
// leaves it dead.
func (c *cluster) killServer(p *proc) error {
	c.killed[p] = true
	return p.kill(10 * time.Second)
}

// stopJettrain kills every coordinator and worker.
func (c *cluster) stopJettrain() {
	for _, n := range append(append([]*node(nil), c.coords...), c.workers...) {
		if n.proc != nil {
			n.down, n.restartAt = true, time.Time{}
			_ = n.proc.kill(10 * time.Second)
		}
	}
}

// stopServers kills NATS and versitygw.
func (c *cluster) stopServers() {
	for _, nd := range c.nats {
		if nd.proc != nil {
			_ = c.killServer(nd.proc)
		}
	}
	if c.s3.proc != nil {
		_ = c.killServer(c.s3.proc)
	}
}

// leftovers kills everything and reports any process of the run still
// alive afterwards: a process group the harness started, or any process
// whose command line names the run's directory.
func (c *cluster) leftovers() []string {
	c.stopJettrain()
	c.stopServers()
	var out []string
	for _, p := range c.procs {
		if p.groupAlive() {
			out = append(out, fmt.Sprintf("leftover: process group %d (%s) still has live processes", p.pgid, p.name))
		}
	}
	for _, s := range processesNaming(c.dir) {
		out = append(out, "leftover: process still running: "+s)
	}
	return out
}
