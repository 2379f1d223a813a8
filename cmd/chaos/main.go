// Command chaos runs the jettrain chaos experiment: a fault-free run, then
// the same run while processes are killed at random, then the invariants.
// See package chaos for what it does and checks.
//
//	go run ./cmd/chaos -kills 30 -epochs 3 -seed 1
//
// It builds the coordinator and worker from the module it is run in, and
// exits 1 when a promise is broken.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jettrain/jettrain/chaos"
)

func main() { os.Exit(run()) }

func run() int {
	var o chaos.Options
	kinds := flag.String("kinds", "worker,coordinator,nats,s3", "fault kinds to draw from")
	keep := flag.Bool("keep", false, "keep the stores and logs (always kept when -dir is given)")
	flag.StringVar(&o.NATSServer, "nats-server", os.Getenv(chaos.EnvNATSServer), "nats-server binary (env "+chaos.EnvNATSServer+")")
	flag.StringVar(&o.Versitygw, "versitygw", os.Getenv(chaos.EnvVersitygw), "versitygw binary (env "+chaos.EnvVersitygw+")")
	flag.StringVar(&o.Dir, "dir", "", "directory for stores and logs (default a temporary one)")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the fault plan; 0 = from the clock")
	flag.IntVar(&o.Faults, "kills", 30, "faults to inject")
	flag.IntVar(&o.Epochs, "epochs", 3, "epochs of the run")
	flag.IntVar(&o.Workers, "workers", 3, "worker processes")
	flag.IntVar(&o.InProcess, "in-process", 0, "workers each coordinator runs in its own process (coordinator start --workers)")
	flag.IntVar(&o.BatchSize, "batch", 32, "global batch size (steps per epoch = samples / batch)")
	flag.IntVar(&o.Coordinators, "coordinators", 2, "coordinator processes: 1, or 2 (leader and hot standby)")
	flag.BoolVar(&o.Cluster, "cluster", false, "three-node NATS cluster with R3 streams")
	flag.IntVar(&o.MaxPayload, "max-payload", 0, "the NATS servers' max_payload in bytes (default 8 MiB; a smaller one sends gradients in parts)")
	flag.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "bound on each run")
	flag.Parse()

	var err error
	if o.Kinds, err = chaos.ParseKinds(*kinds); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if o.Dir == "" {
		if o.Dir, err = os.MkdirTemp("", "jettrain-chaos-"); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		if !*keep {
			defer os.RemoveAll(o.Dir)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Coordinator, o.Worker, err = chaos.Build(ctx, o.Dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o.Log = os.Stderr
	fmt.Fprintf(os.Stderr, "chaos: seed %d, %d faults, logs under %s\n", o.Seed, o.Faults, o.Dir)
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	fmt.Print(rep)
	if !rep.OK() {
		return 1
	}
	return 0
}
