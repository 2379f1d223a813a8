package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/telemetry"
	"github.com/jettrain/jettrain/worker"
)

// Worker is the `worker` command.
func Worker() *cobra.Command {
	var (
		e        endpoints
		dataDir  string
		logLevel string
		id       string
		metrics  string
		sched    string
		report   time.Duration
	)
	cmd := &cobra.Command{
		Use:           "worker",
		Short:         "Compute shard gradients for any jettrain run; run as many as you like",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			if report < 0 {
				return fmt.Errorf("--report-every %s: want 0 (never) or more", report)
			}
			if err := applySched(sched, log); err != nil {
				return err
			}
			o := e.natsOptions("worker")
			if o.URL == "" {
				o.URL = "nats://" + DefaultNATSListen
			}
			tp, err := telemetry.Setup(cmd.Context(), telemetry.Options{Service: "worker", MetricsAddr: metrics})
			if err != nil {
				return err
			}
			defer tp.Shutdown(context.WithoutCancel(cmd.Context()))
			wo := worker.Options{ID: id, DataDir: dataDir, Log: log, Telemetry: tp, CacheDir: filepath.Join(e.dataDir, "cache"), ReportEvery: report}
			// With an object store, datasets this machine lacks are fetched
			// from the copies the coordinator shared there.
			if s3, err := e.s3Config(); err != nil {
				return err
			} else if s3.Endpoint != "" {
				store, err := objstore.Open(cmd.Context(), s3)
				if err != nil {
					return err
				}
				wo.Datasets = store
			}
			return runWorker(cmd.Context(), o, wo)
		},
	}
	fs := cmd.Flags()
	e.flags(fs, false)
	fs.StringVar(&dataDir, "dataset-dir", "", "directory of the dataset files, overriding each run's data_dir")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&id, "id", "", "worker id (default host-pid-n)")
	fs.StringVar(&metrics, "metrics-listen", os.Getenv("JETTRAIN_METRICS_ADDR"), "serve Prometheus metrics at this address (env JETTRAIN_METRICS_ADDR)")
	fs.DurationVar(&report, "report-every", 10*time.Second, "log the shards computed every this often (0: never)")
	schedFlag(fs, &sched)
	return cmd
}
