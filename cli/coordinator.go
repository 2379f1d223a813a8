package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/coordinator"
	"github.com/jettrain/jettrain/internal/handoff"
	"github.com/jettrain/jettrain/internal/pace"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/telemetry"
	"github.com/jettrain/jettrain/worker"
)

// Coordinator is the `coordinator` command.
func Coordinator() *cobra.Command {
	root := &cobra.Command{
		Use:           "coordinator",
		Short:         "Train a neural network over NATS JetStream with any number of workers",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(startCommand(), statusCommand(), historyCommand(), inspectCommand())
	return root
}

type startFlags struct {
	endpoints
	file     string
	sets     []string
	workers  int
	run      string
	replicas int
	ackWait  time.Duration
	logLevel string
	quiet    bool
	metrics  string
	sched    string
}

func startCommand() *cobra.Command {
	f := &startFlags{}
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start or resume the run the config describes; exits 0 when it is complete",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.start(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fs := cmd.Flags()
	f.endpoints.flags(fs, true)
	fs.StringVar(&f.file, "config", "", "run configuration file (YAML or JSON)")
	fs.StringArrayVar(&f.sets, "set", nil, "override a config key: --set optimizer.lr=0.01 (repeatable)")
	fs.IntVar(&f.workers, "workers", 0, "workers to run inside this process")
	fs.StringVar(&f.run, "run", "", "refuse to start unless the config resolves to this run signature")
	fs.IntVar(&f.replicas, "replicas", 1, "JetStream stream replicas (3 on a NATS cluster)")
	fs.DurationVar(&f.ackWait, "ack-wait", 0, "how long a task a worker took waits without a word from it before another worker gets it; sets it for every worker of every run (0: as the broker has it, 10s when new)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress bar")
	fs.StringVar(&f.metrics, "metrics-listen", os.Getenv("JETTRAIN_METRICS_ADDR"), "serve Prometheus metrics and /healthz at this address, e.g. :9464 (env JETTRAIN_METRICS_ADDR)")
	schedFlag(fs, &f.sched)
	return cmd
}

func (f *startFlags) start(ctx context.Context, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	if err := applySched(f.sched, log); err != nil {
		return err
	}
	if f.ackWait < 0 || f.ackWait > 0 && f.ackWait < time.Second {
		return fmt.Errorf("--ack-wait %v: want a second at least, or 0 to keep the broker's", f.ackWait)
	}
	cfg, err := config.Load(f.file, f.sets)
	if err != nil {
		return err
	}
	svc, err := f.open(ctx, "coordinator", true, true, f.s3Listen)
	if err != nil {
		return err
	}
	defer svc.Close()
	// A store the embedded NATS server can no longer write ends the run:
	// training could not go on, and would only time out.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case err := <-svc.storeFailed: // never, without an embedded server
			log.Error("coordinator: the embedded NATS server cannot write its store; stopping", "dir", err.Dir)
			stop(err)
		case <-ctx.Done():
		}
	}()
	if svc.natsSrv != nil || svc.s3Srv != nil {
		log.Info("embedded servers", "nats", svc.natsURL, "s3", svc.store.Endpoint())
	}

	tp, err := telemetry.Setup(ctx, telemetry.Options{Service: "coordinator", MetricsAddr: f.metrics})
	if err != nil {
		return err
	}
	defer tp.Shutdown(context.WithoutCancel(ctx))
	if url := tp.MetricsURL(); url != "" {
		log.Info("serving metrics", "url", url)
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	done := make(chan error, f.workers)
	// The in-process workers hand their gradients to the coordinator, and
	// to each other, in memory; the broker stores them all the same.
	var exchange *handoff.Exchange
	if f.workers > 0 {
		exchange = handoff.New()
		peers := worker.NewPeers()
		wtp, err := telemetry.Setup(ctx, telemetry.Options{Service: "worker"})
		if err != nil {
			return err
		}
		defer wtp.Shutdown(context.WithoutCancel(ctx))
		for i := 0; i < f.workers; i++ {
			go func() {
				done <- superviseWorker(wctx, log, time.Second, func(ctx context.Context) error {
					return runWorker(ctx, svc.opts, worker.Options{Log: log, Telemetry: wtp, Handoff: exchange, Peers: peers})
				})
			}()
		}
	}

	opts := coordinator.Options{Config: cfg, Run: f.run, Replicas: f.replicas, AckWait: f.ackWait, Log: log, Telemetry: tp, Handoff: exchange}
	if !f.quiet {
		opts.Progress = stderr
	}
	res, err := coordinator.Train(ctx, svc.nc, svc.store, opts)
	stopWorkers()
	for i := 0; i < f.workers; i++ {
		if werr := <-done; werr != nil && err == nil {
			err = werr
		}
	}
	resumes := fmt.Sprintf("start again with the same config: run %s resumes from its newest checkpoint, with the gradients stored before", cfg.Signature())
	var storeErr *StoreError
	if err != nil && errors.As(context.Cause(ctx), &storeErr) {
		return fmt.Errorf("%w; make room there (or let it write) and %s", storeErr, resumes)
	}
	if errors.Is(err, coordinator.ErrNoRoom) {
		where := "the store of the NATS server at " + svc.opts.Redacted() + " (or raise its JetStream max_file_store, or the account's quota)"
		if svc.natsSrv != nil {
			where = "the embedded NATS server's store under " + svc.natsStore
		}
		return fmt.Errorf("%w; make room in %s and %s", err, where, resumes)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted; start again with the same config to resume run %s from its newest checkpoint", cfg.Signature())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "run %s complete: %d steps, %d epochs, weights sha256 %s\n", res.Run, res.Step, len(res.History), hex.EncodeToString(res.Digest[:]))
	if n := len(res.History); n > 0 {
		h := res.History[n-1]
		fmt.Fprintf(stdout, "last epoch %d: train loss %.4f acc %.4f, valid loss %.4f acc %.4f\n", h.Epoch, h.TrainLoss, h.TrainAcc, h.ValidLoss, h.ValidAcc)
	}
	return nil
}

// superviseWorker runs an in-process worker (run) until ctx ends, and
// starts it again, after first and then twice as long each time up to
// maxWorkerRestartWait, when it stops with an error (it could not connect,
// or lost its subscription). Before, such a worker was gone for the rest of
// the run without a word, and the run waited for tasks nobody served,
// saying only that its steps made no progress.
func superviseWorker(ctx context.Context, log *slog.Logger, first time.Duration, run func(context.Context) error) error {
	for wait := first; ; wait = min(2*wait, maxWorkerRestartWait) {
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		log.Error("an in-process worker stopped; starting it again", "in", wait, "err", err)
		if !pace.Wait(ctx, wait) {
			return nil
		}
	}
}

// maxWorkerRestartWait bounds the wait before an in-process worker that
// stopped with an error starts again.
const maxWorkerRestartWait = 30 * time.Second

// runWorker serves tasks over its own connection until ctx ends. The
// connection does not echo the worker's own gradients back to it.
func runWorker(ctx context.Context, o natsconn.Options, wo worker.Options) error {
	o.Name = "worker"
	o.Extra = append(o.Extra[:len(o.Extra):len(o.Extra)], nats.NoEcho())
	nc, err := natsconn.Connect(ctx, o)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := worker.New(nc, wo)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// Execute runs cmd with a context canceled by SIGINT/SIGTERM and returns the
// process exit code, printing any error as one line.
func Execute(cmd *cobra.Command) int {
	ctx, stop := signalContext()
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, cmd.Name()+": ") {
			msg = cmd.Name() + ": " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		return 1
	}
	return 0
}
