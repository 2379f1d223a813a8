package chaos

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestServersRestart kills and restarts a NATS cluster node and versitygw
// on their ports and checks that nothing is left running afterwards: the
// harness's own machinery, without jettrain.
func TestServersRestart(t *testing.T) {
	nats, vgw := os.Getenv(EnvNATSServer), os.Getenv(EnvVersitygw)
	if nats == "" || vgw == "" {
		t.Skipf("%s and %s must name the nats-server and versitygw binaries (.ci/nats-server.sh and .ci/versitygw.sh install them)", EnvNATSServer, EnvVersitygw)
	}
	dir := t.TempDir()
	o := &Options{NATSServer: nats, Versitygw: vgw, Coordinators: 1, Log: testWriter{t}}
	o.Cluster = true
	c, err := newCluster(o, dir)
	if err != nil {
		t.Fatal(err)
	}
	c.coords, c.workers = nil, nil
	ctx := context.Background()
	defer func() {
		if left := c.leftovers(); len(left) > 0 {
			t.Errorf("after stopping: %q", left)
		}
	}()
	if err := c.start(ctx); err != nil {
		t.Fatal(err)
	}
	nd := c.nats[1]
	if err := c.killServer(nd.proc); err != nil {
		t.Fatal(err)
	}
	if nd.ready() == nil {
		t.Fatal("killed NATS node still healthy")
	}
	if err := c.startNATS(nd); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, time.Minute, "restarted NATS node", c.tick, nd.ready); err != nil {
		t.Fatal(err)
	}
	if err := c.killServer(c.s3.proc); err != nil {
		t.Fatal(err)
	}
	if err := c.startS3(ctx); err != nil {
		t.Fatal(err)
	}
	c.tick()
	if len(c.unexpected) > 0 {
		t.Errorf("unexpected exits: %q", c.unexpected)
	}
}
