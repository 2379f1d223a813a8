// Package worker computes shard gradients for any jettrain run.
//
// A worker pulls tasks from the durable consumer all workers share, so adding
// workers adds throughput and a worker that dies only delays the tasks it
// held: JetStream redelivers them after the consumer's AckWait. For each task
// it looks up the run's resolved configuration (the runs bucket), loads the
// dataset and builds the network once per run, fetches the weights version
// the task names from the params stream (cached until the step moves on),
// verifies their digest, computes the gradient of the shard's samples and
// publishes it with the message id run/step/shard before acknowledging the
// task. While computing it reports progress with InProgress so a slow task is
// not redelivered.
//
// A malformed task, or one whose weights version no longer exists (a stale
// task from an earlier incarnation of the run), is logged once and terminated
// so it cannot loop forever.
package worker
