package chaos

import (
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

// Flags of the chaos test; the defaults are the short run CI does on every
// submission. See the package documentation for the long run.
var (
	flagFaults   = flag.Int("chaos.kills", 8, "faults to inject (the long run: 30 or more)")
	flagSeed     = flag.Uint64("chaos.seed", 7, "seed of the fault plan (fixed so CI replays one plan); 0 = from the clock")
	flagEpochs   = flag.Int("chaos.epochs", 3, "epochs of the run")
	flagWorkers  = flag.Int("chaos.workers", 1, "worker processes")
	flagInProc   = flag.Int("chaos.in-process", 1, "workers each coordinator runs in its own process, handing it their gradients in memory")
	flagBatch    = flag.Int("chaos.batch", 16, "global batch size (steps per epoch = samples / batch)")
	flagCluster  = flag.Bool("chaos.cluster", false, "three-node NATS cluster with R3 streams")
	flagKinds    = flag.String("chaos.kinds", "worker,coordinator,nats,s3", "fault kinds to draw from")
	flagDir      = flag.String("chaos.dir", "", "keep stores and logs here instead of a temporary directory")
	flagTimeout  = flag.Duration("chaos.timeout", 0, "bound on each run (default 15m)")
	flagRecovery = flag.Duration("chaos.recovery", 0, "bound on recovering from one fault (default 90s)")
)

func TestChaos(t *testing.T) {
	nats, vgw := os.Getenv(EnvNATSServer), os.Getenv(EnvVersitygw)
	if nats == "" || vgw == "" {
		t.Skipf("%s and %s must name the nats-server and versitygw binaries (.ci/nats-server.sh and .ci/versitygw.sh install them)", EnvNATSServer, EnvVersitygw)
	}
	if testing.Short() {
		t.Skip("the chaos run takes minutes; not in -short mode")
	}
	kinds, err := ParseKinds(*flagKinds)
	if err != nil {
		t.Fatal(err)
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d: reproduce with go test ./chaos -run TestChaos -chaos.seed=%d", seed, seed)
	dir := *flagDir
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	coord, worker, err := Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, Options{
		NATSServer: nats, Versitygw: vgw, Coordinator: coord, Worker: worker, Dir: dir,
		Seed: seed, Faults: *flagFaults, Kinds: kinds, Epochs: *flagEpochs, BatchSize: *flagBatch, Workers: *flagWorkers, InProcess: *flagInProc, Cluster: *flagCluster,
		Timeout: *flagTimeout, Recovery: *flagRecovery, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + rep.String())
	if !rep.OK() {
		t.Errorf("chaos run failed (seed %d); see the report above", seed)
	}
}

// testWriter sends progress lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
