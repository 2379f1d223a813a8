package coordinator

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/internal/cpusched"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
	"github.com/jettrain/jettrain/worker"
)

// Each distributed benchmark iteration is a fresh run. Its first benchWarm
// steps are not timed: the first few hundred steps of a process are slower
// while the broker's stores and caches, and with them the Go heap, grow to
// their steady size (about 900 MB here), every new page of it a page fault:
// in them a worker waits about 12 ms for a task every few steps, and not
// after. After them it times benchSegments segments of benchSegment steps,
// and between two segments, with the run paused, the in-process loop over
// as many steps: a shared machine's load drifts over seconds, and
// interleaving puts the two on the same footing. Over the window (about
// 920 steps) Fashion-MNIST (468 steps an epoch) has an epoch's end, with
// its evaluation, in both, and the default checkpoints (every 50 steps,
// and 468) in the distributed run.
const (
	benchWarm     = 384
	benchSegment  = 64
	benchSegments = 8
	benchSteps    = benchSegment * benchSegments
	// benchSkip steps after a pause are not timed: the workers computed
	// them during the pause, from the tasks already out (more near an
	// epoch's end, where tasks go out EvalLookahead steps past it).
	benchSkip = Lookahead + 1
	benchLast = benchWarm + benchSegments*(benchSegment+benchSkip)
)

// BenchmarkThroughput compares samples/s of the main job — the default
// config: MLP 784-256-10 on Fashion-MNIST, batch 128 in 4 shards, Adam, a
// checkpoint every 50 steps — trained in this process with no broker
// (local) against the coordinator with 1 and 2 in-process workers over a
// real embedded JetStream server, and with a checkpoint every 10 steps (the
// checkpoint overhead). The distributed runs also report the ratio of the
// local loop's step time to theirs, over the same number of steps timed
// interleaved with theirs (x-local: 1 is as fast as the local loop), the
// time a worker waited for tasks (idle-ms/step, per worker), the CPU
// the S3 server process spent on checkpoints (s3-cpu-ms/step; cpu-ms/step
// is this process's) and the time this process's threads waited for a core
// (runq-ms/step, and local-runq-ms/step in the local loop's segments; see
// runQueueWait).
// Without the Fashion-MNIST files it runs on the synthetic dataset.
// JETTRAIN_BENCH_SET takes config overrides, e.g. "model=cnn" or
// "hidden=[128],batch_size=512"; JETTRAIN_BENCH_MAX_PAYLOAD the broker's
// max payload in bytes (262144 sends the default MLP's gradients in four
// parts); JETTRAIN_BENCH_CPUPROFILE a file for a CPU profile of the timed
// window alone (see startWindowProfile).
func BenchmarkThroughput(b *testing.B) {
	// As `coordinator start` and `worker` do by default (--sched batch);
	// JETTRAIN_BENCH_SCHED=normal leaves the policy as it is. The S3
	// server, started before, keeps the default, as an object store on
	// its own would.
	sched := cpusched.PolicyBatch
	if s := os.Getenv("JETTRAIN_BENCH_SCHED"); s != "" {
		var err error
		if sched, err = cpusched.ParsePolicy(s); err != nil {
			b.Fatal(err)
		}
	}
	if err := cpusched.Apply(sched); err != nil {
		b.Logf("scheduling policy left as it is: %v", err) // as the commands go on
	}
	var sets []string
	if extra := os.Getenv("JETTRAIN_BENCH_SET"); extra != "" {
		sets = strings.Split(extra, ",")
	}
	cfg, ds := benchConfig(b, sets)
	b.Run("local", func(b *testing.B) {
		steps := uint64(benchWarm + benchSteps)
		u0 := usage(b)
		for b.Loop() {
			if _, err := TrainLocal(context.Background(), cfg, ds, steps); err != nil {
				b.Fatal(err)
			}
		}
		n := float64(b.N) * float64(steps)
		b.ReportMetric(n*float64(cfg.BatchSize)/b.Elapsed().Seconds(), "samples/s")
		b.ReportMetric(b.Elapsed().Seconds()*1e3/n, "ms/step")
		b.ReportMetric(usage(b).since(u0).cpu.Seconds()*1e3/n, "cpu-ms/step")
	})
	for _, v := range []struct{ workers, every int }{{1, cfg.CheckpointEvery}, {2, cfg.CheckpointEvery}, {2, 10}} {
		cfg := cfg
		cfg.CheckpointEvery = v.every
		b.Run(fmt.Sprintf("workers=%d/checkpoint_every=%d", v.workers, v.every), func(b *testing.B) {
			srv := runNATSPayload(b, b.TempDir(), benchMaxPayload(b))
			nc := connect(b, srv.ClientURL(), nats.InProcessServer(srv))
			st := openStore(b, "")
			var t benchTimes
			i := 0
			for b.Loop() {
				i++
				c := cfg
				c.Seed = uint64(i) // a fresh run each iteration
				t.add(benchInterleaved(b, srv, nc, st, c, ds, v.workers))
			}
			n := float64(b.N) * benchSteps
			b.ReportMetric(n*float64(cfg.BatchSize)/t.dist.Seconds(), "samples/s")
			b.ReportMetric(t.dist.Seconds()*1e3/n, "ms/step")
			b.ReportMetric(t.cpu.Seconds()*1e3/n, "cpu-ms/step")
			b.ReportMetric(t.s3CPU.Seconds()*1e3/n, "s3-cpu-ms/step")
			b.ReportMetric(t.local.Seconds()*1e3/n, "local-ms/step")
			b.ReportMetric(t.localCPU.Seconds()*1e3/n, "local-cpu-ms/step")
			b.ReportMetric(t.local.Seconds()/t.dist.Seconds(), "x-local")
			b.ReportMetric(t.idle.Seconds()*1e3/n/float64(v.workers), "idle-ms/step")
			b.ReportMetric(t.runq.Seconds()*1e3/n, "runq-ms/step")
			b.ReportMetric(t.localRunq.Seconds()*1e3/n, "local-runq-ms/step")
			b.ReportMetric(float64(t.grads)/n, "grads/step")
			b.ReportMetric(float64(t.faults)/n, "faults/step")
			b.ReportMetric(float64(t.localFaults)/n, "local-faults/step")
		})
	}
}

// benchTimes are the timed windows of a distributed benchmark: the
// distributed run's wall and CPU time, and the local loop's over as many
// steps.
type benchTimes struct {
	dist, cpu, s3CPU, local, localCPU, idle time.Duration
	runq, localRunq                         time.Duration // threads' run-queue waits
	grads                                   uint64        // gradient messages stored
	faults, localFaults                     int64         // this process's page faults
}

func (t *benchTimes) add(u benchTimes) {
	t.dist += u.dist
	t.cpu += u.cpu
	t.s3CPU += u.s3CPU
	t.local += u.local
	t.localCPU += u.localCPU
	t.idle += u.idle
	t.runq += u.runq
	t.localRunq += u.localRunq
	t.grads += u.grads
	t.faults += u.faults
	t.localFaults += u.localFaults
}

// benchInterleaved trains one distributed run of cfg with workers fresh
// in-process workers and times it in segments, pausing it between two of
// them for the local loop to train as many steps.
func benchInterleaved(b *testing.B, srv *server.Server, nc *nats.Conn, st *objstore.Store, cfg config.Config, ds *model.Dataset, workers int) benchTimes {
	spe := model.StepsPerEpoch(ds.Train.N, cfg.BatchSize)
	p := newPool(b, srv.ClientURL())
	// In-process connections, as `coordinator start` makes to its
	// embedded server.
	p.opts = append(p.opts, nats.InProcessServer(srv))
	// And, as it does, the workers hand their gradients over in memory,
	// unless JETTRAIN_BENCH_HANDOFF=off.
	if os.Getenv("JETTRAIN_BENCH_HANDOFF") != "off" {
		p.handoff = handoff.New()
	}
	// The workers hand each other their gradients in memory too, as
	// coordinator start's do, unless JETTRAIN_BENCH_PEERS=off.
	// With JETTRAIN_BENCH_SHARED=on they share one connection (made
	// with nats.NoEcho, so the broker sends none of their gradients back
	// to them), which coordinator start's do not: measured, it saved CPU
	// but no time (docs/performance.md).
	if os.Getenv("JETTRAIN_BENCH_PEERS") != "off" {
		p.peers = worker.NewPeers()
		p.shared = os.Getenv("JETTRAIN_BENCH_SHARED") == "on"
	}
	p.add(workers)
	defer p.close()
	local, err := newLocalLoop(cfg, ds)
	if err != nil {
		b.Fatal(err)
	}
	defer local.close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var t benchTimes
	var failed error // the hook runs on the coordinator's goroutine: no b.Fatal there
	var first time.Time
	var s3CPU0, idle0 time.Duration
	var u0 procUsage
	var grads0 uint64
	var evaluated atomic.Uint64 // epochs whose evaluations are computed
	stopProfile := func() {}
	defer func() { stopProfile() }()
	timing, segments, next := false, 0, uint64(benchWarm)
	committed := func(step uint64, _ [8]byte) {
		if step != next {
			return
		}
		if !timing {
			if segments == 0 {
				if stopProfile, failed = startWindowProfile(); failed != nil {
					cancel()
					return
				}
			}
			grads0 = gradsStored(srv)
			u0, s3CPU0, idle0 = usage(b), s3CPU(), p.idle() // before the clock: reading them is not the run's time
			first, timing, next = time.Now(), true, step+benchSegment
			return
		}
		t.dist += time.Since(first)
		u := usage(b).since(u0)
		t.cpu += u.cpu
		t.runq += u.runq
		t.faults += u.faults
		t.s3CPU += s3CPU() - s3CPU0
		t.idle += p.idle() - idle0
		t.grads += gradsStored(srv) - grads0
		timing, segments = false, segments+1
		// The pause: the workers finish the tasks that are out (those
		// of every step to tasksOutTo) and wait; then the local loop
		// trains as many steps as a segment.
		out := tasksOutTo(step-1, spe) // the tasks out when step was committed
		want := (out + 1) * uint64(cfg.Shards)
		for deadline := time.Now().Add(time.Minute); p.tasks() < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				failed = fmt.Errorf("the workers completed %d tasks, not the %d out", p.tasks(), want)
				cancel()
				return
			}
		}
		// An epoch's evaluation runs in the background, paced: it
		// finishes before the pause's loop runs, not beside it.
		for deadline := time.Now().Add(time.Minute); evaluated.Load() < step/uint64(spe); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				failed = fmt.Errorf("the evaluation of epoch %d was not done in a minute", evaluated.Load())
				cancel()
				return
			}
		}
		u1 := usage(b)
		start := time.Now()
		// Labelled so a CPU profile can leave the local loop out
		// (go tool pprof -tagignore loop=local), or show it alone
		// (-tagfocus loop=local) next to the workers (-tagfocus
		// worker=in-process, the pool's label) and the coordinator
		// (-tagfocus coordinator=bench -tagignore loop=local); what
		// carries none of the three is the broker's and the clients'.
		pprof.Do(ctx, pprof.Labels("loop", "local"), func(ctx context.Context) {
			err = local.run(ctx, local.m.Step()+benchSegment)
		})
		if err != nil {
			failed = err
			cancel()
			return
		}
		t.local += time.Since(start)
		u = usage(b).since(u1)
		t.localCPU += u.cpu
		t.localRunq += u.runq
		t.localFaults += u.faults
		if segments == benchSegments {
			stopProfile()
			cancel()
			return
		}
		next = max(step+benchSkip, out+2)
	}
	pprof.Do(ctx, pprof.Labels("coordinator", "bench"), func(ctx context.Context) {
		_, _ = Train(ctx, nc, st, Options{Config: cfg, Log: quietLog(), Handoff: p.handoff, Hooks: Hooks{Committed: committed,
			Evaluated: func(int) { evaluated.Add(1) }}})
	})
	if failed != nil {
		b.Fatal(failed)
	}
	if segments < benchSegments {
		b.Fatalf("the run ended after %d of %d timed segments", segments, benchSegments)
	}
	return t
}

// startWindowProfile starts a CPU profile into the file
// JETTRAIN_BENCH_CPUPROFILE names, if it names one: the timed segments of a
// distributed run and the local loop's between them (labelled loop=local),
// without the warm-up, the dataset's loading or the process's other runs
// (with -test.benchtime 1x and one sub-benchmark, the profile is that run's
// window).
// It returns what stops the profile, which may be called more than once.
func startWindowProfile() (stop func(), err error) {
	name := os.Getenv("JETTRAIN_BENCH_CPUPROFILE")
	if name == "" {
		return func() {}, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return func() {}, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return func() {}, fmt.Errorf("JETTRAIN_BENCH_CPUPROFILE: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}, nil
}

// gradsStored is the last sequence of srv's grads stream: how many
// gradient messages (whole gradients and parts) it has stored.
func gradsStored(srv *server.Server) uint64 {
	acc, err := srv.JszAccount(&server.JSzOptions{Account: srv.GlobalAccount().Name, Streams: true})
	if err != nil {
		return 0
	}
	for _, st := range acc.Streams {
		if st.Name == protocol.GradsStream {
			return st.State.LastSeq
		}
	}
	return 0
}

// benchConfig is the default config with sets applied, on Fashion-MNIST
// when its files are installed and on the synthetic dataset otherwise.
func benchConfig(b testing.TB, sets []string) (config.Config, *model.Dataset) {
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
	// A pause near an epoch's end skips the steps of the tasks out past it.
	cfg.Epochs = max(cfg.Epochs, (benchLast+benchSegments*EvalLookahead)/spe+1)
	return cfg, ds
}

// s3CPU is the CPU time the S3 server process has used (0 where the
// system does not tell): checkpoints cost it more than they cost this
// process.
func s3CPU() time.Duration {
	d, _ := s3Server.CPU()
	return d
}

// procUsage is what this process has used: CPU time, user and system (a
// step's cost on a machine whose cores the broker, the coordinator and the
// workers share), and page faults, minor and major (each a fresh page of
// memory, costly on a virtual machine).
type procUsage struct {
	cpu    time.Duration
	faults int64
	runq   time.Duration // time its threads waited, ready to run, for a core
}

// usage is this process's use so far, from one getrusage, and the run-queue
// wait of its threads (Linux).
func usage(b testing.TB) procUsage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return procUsage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), faults: ru.Minflt + ru.Majflt, runq: runQueueWait()}
}

// since is what was used between v and u.
func (u procUsage) since(v procUsage) procUsage {
	return procUsage{cpu: u.cpu - v.cpu, faults: u.faults - v.faults, runq: u.runq - v.runq}
}

// runQueueWait sums how long the process's threads have waited, ready to
// run, for a core: the second field of each /proc/self/task/TID/schedstat
// (0 where there is none). On two cores, the time the broker's, the
// coordinator's and the S3 server's work took from the threads computing
// gradients, or kept from each other. A thread that ended takes its share
// with it; the Go runtime rarely ends one.
func runQueueWait() time.Duration {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				sum += time.Duration(ns)
			}
		}
	}
	return sum
}

// benchMaxPayload is JETTRAIN_BENCH_MAX_PAYLOAD, or protocol.MaxPayload.
func benchMaxPayload(b *testing.B) int32 {
	v := os.Getenv("JETTRAIN_BENCH_MAX_PAYLOAD")
	if v == "" {
		return protocol.MaxPayload
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 {
		b.Fatalf("JETTRAIN_BENCH_MAX_PAYLOAD=%q: want a number of bytes", v)
	}
	return int32(n)
}
