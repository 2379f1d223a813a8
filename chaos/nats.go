package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jettrain/jettrain/internal/freeport"
)

// natsNode is one nats-server with JetStream: a fixed client, monitoring
// and (in a cluster) route port, a config file and a store directory that
// survive restarts, so a restarted node comes back with its streams.
type natsNode struct {
	name       string
	bin        string
	dir        string // store, config and logs
	port       int
	httpPort   int
	routePort  int
	restarts   int
	proc       *proc
	configFile string
	maxPayload int // bytes
}

// newNATS lays out n nodes (1, or 3 for a cluster with routes between all
// of them) under dir, taking messages of up to maxPayload bytes; nothing is
// started yet.
func newNATS(bin, dir string, n, maxPayload int) ([]*natsNode, error) {
	nodes := make([]*natsNode, n)
	for i := range nodes {
		nd := &natsNode{name: fmt.Sprintf("nats-%d", i), bin: bin, dir: filepath.Join(dir, fmt.Sprintf("nats-%d", i)), maxPayload: maxPayload}
		var err error
		if nd.port, err = freeport.Stable(); err != nil {
			return nil, err
		}
		if nd.httpPort, err = freeport.Stable(); err != nil {
			return nil, err
		}
		if n > 1 {
			if nd.routePort, err = freeport.Stable(); err != nil {
				return nil, err
			}
		}
		nodes[i] = nd
	}
	for _, nd := range nodes {
		if err := nd.writeConfig(nodes); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}

// writeConfig writes the node's config file, with the node's payload limit
// (by default 8 MiB, as deploy/nats.conf sets: a gradient travels as one
// message; a smaller one sends gradients in parts).
func (nd *natsNode) writeConfig(all []*natsNode) error {
	if err := os.MkdirAll(filepath.Join(nd.dir, "store"), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nlisten: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nmax_payload: %d\n", nd.name, nd.port, nd.httpPort, nd.maxPayload)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", filepath.Join(nd.dir, "store"))
	if len(all) > 1 {
		var routes []string
		for _, o := range all {
			if o != nd {
				routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", o.routePort))
			}
		}
		fmt.Fprintf(&b, "cluster {\n  name: jettrain\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", nd.routePort, strings.Join(routes, ", "))
	}
	nd.configFile = filepath.Join(nd.dir, "nats.conf")
	return os.WriteFile(nd.configFile, []byte(b.String()), 0o644)
}

func (nd *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", nd.port) }

// start runs the node; ready reports when it serves JetStream.
func (nd *natsNode) start() error {
	logPath := filepath.Join(nd.dir, fmt.Sprintf("nats.%d.log", nd.restarts))
	p, err := startProc(nd.name, nd.bin, []string{"-c", nd.configFile}, nil, logPath, nil)
	if err != nil {
		return err
	}
	nd.proc = p
	nd.restarts++
	return nil
}

// ready returns nil once the node is healthy: JetStream enabled and, in a
// cluster, its streams caught up with their leaders.
func (nd *natsNode) ready() error {
	if done, code := nd.proc.exited(); done {
		return fmt.Errorf("%s exited with code %d: %s", nd.name, code, strings.Join(nd.proc.lastLines(), " | "))
	}
	return httpUp(fmt.Sprintf("http://127.0.0.1:%d/healthz", nd.httpPort), 300)
}

// clientURLs joins the client URLs of every node, the form natsconn takes.
func clientURLs(nodes []*natsNode) string {
	urls := make([]string, len(nodes))
	for i, nd := range nodes {
		urls[i] = nd.url()
	}
	return strings.Join(urls, ",")
}
