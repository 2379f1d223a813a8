// Package worker computes shard gradients for any jettrain run.
//
// A worker pulls tasks from the durable consumer all workers share, so adding
// workers adds throughput and a worker that dies only delays the tasks it
// held: JetStream redelivers them after the consumer's AckWait. For each task
// it looks up the run's resolved configuration (the runs bucket), loads the
// dataset and builds the network once per run, takes the weights version
// the task names (received by subscription as the coordinator publishes it,
// or fetched from the params stream, and cached until the step moves on),
// computes the gradient of the shard's samples and publishes it with the
// message id run/step/shard, acknowledging the task only once the gradient
// is stored. While computing it reports progress with InProgress so a slow
// task is not redelivered.
//
// The task loop never waits on the network between shards: gradients go out
// from a publisher goroutine in the order they were computed, the next task
// is prefetched, and a new weights version's digest is checked while the
// first gradient on it is computed (a gradient is published only on weights
// that passed).
//
// A malformed task, or one whose weights version no longer exists (a stale
// task from an earlier incarnation of the run), is logged once and terminated
// so it cannot loop forever.
package worker
