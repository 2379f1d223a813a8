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

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
)

// Each benchmark iteration is a fresh run measured over benchSteps steps
// after benchWarm steps: the first hundred or so steps of a run are slower
// while the broker's stores and caches grow to their steady size. On
// Fashion-MNIST (468 steps an epoch) the window holds an epoch's end, with
// its evaluation, and the default checkpoints (every 50 steps, and 468).
// The local loop has no warm-up and is timed over all its steps.
const (
	benchWarm  = 128
	benchSteps = 512
)

// BenchmarkThroughput compares samples/s of the main job — the default
// config: MLP 784-256-10 on Fashion-MNIST, batch 128 in 4 shards, Adam, a
// checkpoint every 50 steps — trained in this process with no broker
// (local) against the coordinator with 1 and 2 in-process workers over a
// real embedded JetStream server, and with a checkpoint every 10 steps (the
// checkpoint overhead). Each distributed iteration also times the local loop
// right before it and reports the ratio of their step times (x-local: 1 is
// as fast as the local loop). Without the Fashion-MNIST files it runs on the
// synthetic dataset. JETTRAIN_BENCH_SET takes config overrides, e.g.
// "model=cnn" or "hidden=[128],batch_size=512".
func BenchmarkThroughput(b *testing.B) {
	var sets []string
	if extra := os.Getenv("JETTRAIN_BENCH_SET"); extra != "" {
		sets = strings.Split(extra, ",")
	}
	cfg, ds := benchConfig(b, sets)
	steps := uint64(benchWarm + benchSteps)
	b.Run("local", func(b *testing.B) {
		cpu0 := cpuTime(b)
		for b.Loop() {
			if _, err := TrainLocal(context.Background(), cfg, ds, steps); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N) * float64(steps)
		b.ReportMetric(n*float64(cfg.BatchSize)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric(b.Elapsed().Seconds()*1e3/n, "ms/step")
		b.ReportMetric((cpuTime(b)-cpu0).Seconds()*1e3/n, "cpu-ms/step")
	})
	for _, v := range []struct{ workers, every int }{{1, cfg.CheckpointEvery}, {2, cfg.CheckpointEvery}, {2, 10}} {
		workers := v.workers
		cfg := cfg
		cfg.CheckpointEvery = v.every
		b.Run(fmt.Sprintf("workers=%d/checkpoint_every=%d", workers, v.every), func(b *testing.B) {
			srv := runNATS(b, b.TempDir())
			// In-process connections, as `coordinator start` makes to
			// its embedded server.
			inproc := nats.InProcessServer(srv)
			p := newPool(b, srv.ClientURL())
			p.opts = append(p.opts, inproc)
			p.add(workers)
			defer p.close()
			nc := connect(b, srv.ClientURL(), inproc)
			st := openStore(b, "")
			i := 0
			var steady, cpu, local time.Duration // over the measured window only
			for b.Loop() {
				i++
				c := cfg
				c.Seed = uint64(i) // a fresh run each iteration
				// The in-process loop right before, for a ratio that the
				// load of a shared machine moves less than two tables do.
				start := time.Now()
				if _, err := TrainLocal(context.Background(), c, ds, steps); err != nil {
					b.Fatal(err)
				}
				local += time.Since(start)
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
			n := float64(b.N) * benchSteps
			if steady == 0 {
				b.Fatalf("the run ended before step %d", benchWarm+benchSteps)
			}
			b.ReportMetric(n*float64(cfg.BatchSize)/steady.Seconds(), "samples/s")
			b.ReportMetric(steady.Seconds()*1e3/n, "ms/step")
			b.ReportMetric(cpu.Seconds()*1e3/n, "cpu-ms/step")
			b.ReportMetric(local.Seconds()/float64(b.N)/float64(steps)/(steady.Seconds()/n), "x-local")
		})
	}
}

// benchConfig is the default config with sets applied, on Fashion-MNIST
// when its files are installed and on the synthetic dataset otherwise.
func benchConfig(b *testing.B, sets []string) (config.Config, *model.Dataset) {
	cfg, err := config.Load("", sets)
	if err != nil {
		b.Fatal(err)
	}
	ds, err := model.LoadDataset(cfg.Dataset, cfg.DataDir)
	if err != nil {
		b.Logf("%v; benchmarking on the synthetic dataset", err)
		if cfg, err = config.Load("", append([]string{"dataset=synthetic"}, sets...)); err != nil {
			b.Fatal(err)
		}
		if ds, err = model.LoadDataset(cfg.Dataset, ""); err != nil {
			b.Fatal(err)
		}
	}
	// Enough epochs for the measured window (the synthetic dataset has 32
	// steps an epoch at batch 128).
	spe := model.StepsPerEpoch(ds.Train.N, cfg.BatchSize)
	cfg.Epochs = max(cfg.Epochs, (benchWarm+benchSteps)/spe+1)
	return cfg, ds
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
