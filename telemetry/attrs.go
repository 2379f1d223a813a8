package telemetry

// Attribute keys on spans and metrics. Use them with the attribute package:
// attribute.String(telemetry.AttrRun, sig), attribute.Int64(telemetry.AttrStep, step).
//
// Keep high-cardinality keys (AttrStep, AttrShard) on spans only; metrics
// take AttrRun, AttrWorker and AttrSplit.
const (
	AttrRun        = "jettrain.run"        // run signature
	AttrEpoch      = "jettrain.epoch"      // epoch number
	AttrStep       = "jettrain.step"       // global step number
	AttrShard      = "jettrain.shard"      // shard index within a step
	AttrWorker     = "jettrain.worker"     // worker id
	AttrRedelivery = "jettrain.redelivery" // JetStream delivery count minus one
	AttrSplit      = "jettrain.split"      // "train" or "valid", on loss and accuracy
	AttrBytes      = "jettrain.bytes"      // payload size on publish/fetch spans
	AttrCheckpoint = "jettrain.checkpoint" // checkpoint object key
)

// Span names shared by the coordinator and worker, so a step's trace reads
// the same from every process:
//
//	epoch
//	└── step                         coordinator
//	    ├── step.publish             tasks out
//	    ├── step.wait                gradients in
//	    │   └── task                 worker (child through NATS headers)
//	    │       ├── task.fetch_weights
//	    │       ├── task.compute
//	    │       └── task.publish
//	    ├── step.combine
//	    ├── step.apply
//	    └── checkpoint.save
const (
	SpanEpoch          = "epoch"
	SpanStep           = "step"
	SpanStepPublish    = "step.publish"
	SpanStepWait       = "step.wait"
	SpanStepCombine    = "step.combine"
	SpanStepApply      = "step.apply"
	SpanCheckpointSave = "checkpoint.save"
	SpanCheckpointLoad = "checkpoint.load"
	SpanRecoveryReplay = "recovery.replay"
	SpanTask           = "task"
	SpanTaskFetch      = "task.fetch_weights"
	SpanTaskCompute    = "task.compute"
	SpanTaskPublish    = "task.publish"
)
