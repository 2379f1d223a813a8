package telemetry

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// Instrument names. With the Prometheus exporter they appear with dots as
// underscores and the unit as a suffix, e.g. jettrain_step_duration_seconds.
const (
	MetricStepDuration       = "jettrain.step.duration"
	MetricStep               = "jettrain.step.current"
	MetricEpoch              = "jettrain.epoch.current"
	MetricSamples            = "jettrain.samples"
	MetricSamplesPerSecond   = "jettrain.samples.rate"
	MetricLoss               = "jettrain.loss"
	MetricAccuracy           = "jettrain.accuracy"
	MetricTasksPublished     = "jettrain.tasks.published"
	MetricTasksCompleted     = "jettrain.tasks.completed"
	MetricTasksRedelivered   = "jettrain.tasks.redelivered"
	MetricTaskDuration       = "jettrain.task.duration"
	MetricWorkerIdle         = "jettrain.worker.idle"
	MetricGradientBytes      = "jettrain.gradient.bytes"
	MetricCheckpointDuration = "jettrain.checkpoint.duration"
	MetricCheckpointBytes    = "jettrain.checkpoint.bytes"
	MetricWorkersAlive       = "jettrain.workers.alive"
	MetricReplayedMessages   = "jettrain.recovery.replayed"
)

// durationBuckets (seconds) cover sub-millisecond shard tasks up to
// minute-long checkpoints of large models.
var durationBuckets = []float64{
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60,
}

// Metrics are the instruments the coordinator and worker record, created in
// one place so names, units and buckets agree. A Metrics from a no-op meter
// records nothing at no cost.
//
// Record with the attributes named in the field comments; the numbers for a
// finished epoch are the ones written to history.json.
type Metrics struct {
	// StepDuration is the wall time of one optimizer step (s), publish to
	// apply. Attrs: AttrRun.
	StepDuration metric.Float64Histogram
	// Step and Epoch are the last committed step and the current epoch.
	Step, Epoch metric.Int64Gauge
	// Samples counts training samples whose gradients were applied; its rate
	// is the throughput. Attrs: AttrRun.
	Samples metric.Int64Counter
	// SamplesPerSecond is the throughput of the last finished epoch, the
	// history's samples_per_s. Attrs: AttrRun.
	SamplesPerSecond metric.Float64Gauge
	// Loss and Accuracy of the last finished epoch (or step, for train).
	// Attrs: AttrRun, AttrSplit ("train" | "valid").
	Loss, Accuracy metric.Float64Gauge
	// TasksPublished counts shard tasks the coordinator sent; TasksCompleted
	// counts gradients workers published (attrs: AttrWorker).
	TasksPublished, TasksCompleted metric.Int64Counter
	// TasksRedelivered counts tasks JetStream delivered again because a
	// worker died or was slow. Attrs: AttrRun or AttrWorker.
	TasksRedelivered metric.Int64Counter
	// TaskDuration is a worker's time for one shard: fetch, compute,
	// publish (s). Attrs: AttrWorker.
	TaskDuration metric.Float64Histogram
	// WorkerIdle is the time a worker waited for its next task (s): what
	// the coordinator's pace or a stall cost it. Attrs: AttrWorker.
	WorkerIdle metric.Float64Counter
	// GradientBytes counts gradient payload bytes published (worker) or
	// received (coordinator).
	GradientBytes metric.Int64Counter
	// CheckpointDuration is the time to write a checkpoint and its manifest
	// (s); CheckpointBytes counts bytes written.
	CheckpointDuration metric.Float64Histogram
	CheckpointBytes    metric.Int64Counter
	// WorkersAlive is the number of workers heard from recently.
	WorkersAlive metric.Int64Gauge
	// ReplayedMessages counts stream messages replayed during recovery.
	ReplayedMessages metric.Int64Counter
}

// NewMetrics creates every instrument on m.
func NewMetrics(m metric.Meter) (*Metrics, error) {
	var (
		x    Metrics
		errs []error
	)
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	x.StepDuration, err = m.Float64Histogram(MetricStepDuration, metric.WithUnit("s"),
		metric.WithDescription("Wall time of one training step, publish to apply."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	x.Step, err = m.Int64Gauge(MetricStep, metric.WithUnit("{step}"),
		metric.WithDescription("Last committed global step."))
	check(err)
	x.Epoch, err = m.Int64Gauge(MetricEpoch, metric.WithUnit("{epoch}"),
		metric.WithDescription("Current epoch."))
	check(err)
	x.Samples, err = m.Int64Counter(MetricSamples, metric.WithUnit("{sample}"),
		metric.WithDescription("Training samples whose gradients were applied."))
	check(err)
	x.SamplesPerSecond, err = m.Float64Gauge(MetricSamplesPerSecond, metric.WithUnit("{sample}/s"),
		metric.WithDescription("Training throughput of the last finished epoch."))
	check(err)
	x.Loss, err = m.Float64Gauge(MetricLoss, metric.WithUnit("1"),
		metric.WithDescription("Mean loss, by split."))
	check(err)
	x.Accuracy, err = m.Float64Gauge(MetricAccuracy, metric.WithUnit("1"),
		metric.WithDescription("Accuracy in [0,1], by split."))
	check(err)
	x.TasksPublished, err = m.Int64Counter(MetricTasksPublished, metric.WithUnit("{task}"),
		metric.WithDescription("Shard tasks published by the coordinator."))
	check(err)
	x.TasksCompleted, err = m.Int64Counter(MetricTasksCompleted, metric.WithUnit("{task}"),
		metric.WithDescription("Shard gradients published by workers."))
	check(err)
	x.TasksRedelivered, err = m.Int64Counter(MetricTasksRedelivered, metric.WithUnit("{task}"),
		metric.WithDescription("Tasks delivered again after a worker failed or stalled."))
	check(err)
	x.TaskDuration, err = m.Float64Histogram(MetricTaskDuration, metric.WithUnit("s"),
		metric.WithDescription("Worker time for one shard task."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	x.WorkerIdle, err = m.Float64Counter(MetricWorkerIdle, metric.WithUnit("s"),
		metric.WithDescription("Time a worker waited for its next task."))
	check(err)
	x.GradientBytes, err = m.Int64Counter(MetricGradientBytes, metric.WithUnit("By"),
		metric.WithDescription("Gradient payload bytes."))
	check(err)
	x.CheckpointDuration, err = m.Float64Histogram(MetricCheckpointDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to write a checkpoint and commit its manifest."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check(err)
	x.CheckpointBytes, err = m.Int64Counter(MetricCheckpointBytes, metric.WithUnit("By"),
		metric.WithDescription("Checkpoint bytes written."))
	check(err)
	x.WorkersAlive, err = m.Int64Gauge(MetricWorkersAlive, metric.WithUnit("{worker}"),
		metric.WithDescription("Workers heard from recently."))
	check(err)
	x.ReplayedMessages, err = m.Int64Counter(MetricReplayedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Stream messages replayed during recovery."))
	check(err)
	if len(errs) > 0 {
		return nil, errors.Join(append([]error{ErrConfig}, errs...)...)
	}
	return &x, nil
}
