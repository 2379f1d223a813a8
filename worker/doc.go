// Package worker computes shard gradients for any jettrain run.
//
// A worker pulls tasks from the durable consumer all workers share, so adding
// workers adds throughput and a worker that dies only delays the tasks it
// held: JetStream redelivers them after the consumer's AckWait. For each task
// it looks up the run's resolved configuration (the runs bucket), loads the
// dataset and builds the network once per run, brings its replica of the
// run to the weights version the task names, computes the gradient of the
// shard's samples and publishes it with the run/step/shard message id,
// acknowledging the task only once the gradient is stored. Every task it has
// taken and not settled (see holdings) is reported in progress with
// InProgress every third of the ack wait, so a slow task is not
// redelivered; a worker whose tasks are slow keeps none waiting unseen in
// its client (see handPace), and one that has taken no task for a third of
// the ack wait takes what its client holds (see taskFeed.watch).
//
// The replica (weights and optimizer state) steps itself forward from the
// gradients of each step — its own, and other workers', which arrive by
// subscription or are fetched from the grads stream — with the same sum and
// optimizer code as the coordinator, so no weights cross the network per
// step. A worker with no state, or behind, starts from the run's snapshot
// and replays the gradients after it. The coordinator hands out tasks two
// steps ahead (and 32 past an epoch's end, before it evaluates), so a worker
// goes from one step to the next without waiting for the coordinator. A
// task whose step still misses gradients waits for them, serving meanwhile
// any of those shards it holds itself; after half a second (longer for
// long shards) it computes the missing ones from tasks it makes itself, as
// the coordinator makes them from the run's config (see derived), so a
// shard whose task a dead worker holds, or a broker restart left pending,
// does not wait for the task to come back through the work queue.
//
// The task loop never waits on the network between shards: gradients go out
// from a publisher goroutine in the order they were computed, the next task
// is prefetched (but for tasks so slow that a hand of them would outlast the
// ack wait: those are fetched one at a time, see handPace). A worker that computed shards 0..k of a step itself
// sends them as one gradient (their sum), which is a quarter of the bytes
// when one worker serves a run of four shards: between two shards it waits
// a moment for the next task, longer while its inbox hears no other worker
// (the next shard can then only be its own). A gradient larger than the
// server's max payload goes in parts (protocol.GradPart), acknowledged once
// every part is stored; the inbox and the replica's lookups put peers'
// parts back together.
//
// A malformed task, or one whose step the coordinator has committed already
// (a stale task from a redelivery or an earlier incarnation of the run), is
// logged and terminated so it cannot loop forever.
package worker
