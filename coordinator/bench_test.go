package coordinator

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/model"
)

// Each distributed benchmark iteration is a fresh run measured over
// benchSteps steps after benchWarm steps: the first few hundred steps of a
// run are slower while the broker's stores and caches grow to their steady
// size (the grads stream is trimmed behind each checkpoint from then on).
// The local loop has no warm-up and is timed over benchSteps steps.
const (
	benchWarm  = 128
	benchSteps = 256
)

// BenchmarkThroughput compares samples/s of the default MLP (784-128-10,
// batch 128 in 4 shards, Adam) trained in this process with no broker
// (local) against the coordinator with 1 and 2 in-process workers over a
// real embedded JetStream server, and with a checkpoint every 10 steps
// against none (the checkpoint overhead). JETTRAIN_BENCH_SET takes extra
// config overrides, e.g. "model=cnn" or "batch_size=512".
func BenchmarkThroughput(b *testing.B) {
	sets := []string{"hidden=[128]", "batch_size=128", "epochs=20", "checkpoint_every=1000"}
	if extra := os.Getenv("JETTRAIN_BENCH_SET"); extra != "" {
		sets = append(sets, strings.Split(extra, ",")...)
	}
	cfg := smallConfig(b, sets...)
	ds, err := model.LoadDataset(cfg.Dataset, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("local", func(b *testing.B) {
		cpu0 := cpuTime(b)
		for b.Loop() {
			if _, err := TrainLocal(context.Background(), cfg, ds, benchSteps); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchSteps*cfg.BatchSize)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N*benchSteps), "ms/step")
		b.ReportMetric((cpuTime(b)-cpu0).Seconds()*1e3/float64(b.N*benchSteps), "cpu-ms/step")
	})
	// checkpoint_every=1000 checkpoints only at the end of each epoch
	// (every 32 steps on the synthetic dataset).
	for _, v := range []struct{ workers, every int }{{1, 1000}, {2, 1000}, {2, 10}} {
		workers := v.workers
		cfg := cfg
		cfg.CheckpointEvery = v.every
		b.Run(fmt.Sprintf("workers=%d/checkpoint_every=%d", workers, v.every), func(b *testing.B) {
			srv := runNATS(b, b.TempDir())
			// In-process connections, as `coordinator start` makes to
			// its embedded server.
			inproc := nats.InProcessServer(srv)
			p := newPool(b, srv.ClientURL())
			p.opts = []nats.Option{inproc}
			p.add(workers)
			defer p.close()
			nc := connect(b, srv.ClientURL(), inproc)
			st := openStore(b, "")
			i := 0
			var steady, cpu time.Duration // from the first commit to the last: startup excluded
			for b.Loop() {
				i++
				c := cfg
				c.Seed = uint64(i) // a fresh run each iteration
				ctx, cancel := context.WithCancel(context.Background())
				var first time.Time
				var cpu0 time.Duration
				_, _ = Train(ctx, nc, st, Options{Config: c, Log: quietLog(), Hooks: Hooks{Committed: func(step uint64, _ [32]byte) {
					switch step {
					case benchWarm:
						first, cpu0 = time.Now(), cpuTime(b)
					case benchWarm + benchSteps:
						steady += time.Since(first)
						cpu += cpuTime(b) - cpu0
						cancel()
					}
				}}})
				cancel()
			}
			b.ReportMetric(float64(b.N*benchSteps*cfg.BatchSize)/steady.Seconds(), "samples/s")
			b.ReportMetric(steady.Seconds()*1e3/float64(b.N*benchSteps), "ms/step")
			b.ReportMetric(cpu.Seconds()*1e3/float64(b.N*benchSteps), "cpu-ms/step")
		})
	}
}

// cpuTime is the CPU time this process has used, user and system: a step's
// cost on a machine whose cores the broker, the coordinator and the workers
// share.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
