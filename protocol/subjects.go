package protocol

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream, consumer and bucket names.
const (
	TasksStream     = "JT_TASKS"
	GradsStream     = "JT_GRADS"
	ParamsStream    = "JT_PARAMS"
	WorkersConsumer = "jt-workers"
	RunsBucket      = "jt-runs"

	// MaxPayload is the max_payload the embedded NATS server runs with.
	MaxPayload = 8 << 20

	// ParamsKept is how many weights versions ParamsStream keeps, over all runs.
	ParamsKept = 256
)

// TasksSubject is where the coordinator of run publishes shard tasks.
func TasksSubject(run string) string { return "jt.tasks." + run }

// GradsSubject is where workers publish the gradients of run.
func GradsSubject(run string) string { return "jt.grads." + run }

// ParamsSubject is where the weights version step of run is published.
func ParamsSubject(run string, step uint64) string { return fmt.Sprintf("jt.params.%s.%d", run, step) }

// HeartbeatSubject carries worker heartbeats (core NATS, not persisted).
// Workers send one every HeartbeatEvery; a coordinator counts a worker as
// alive for three intervals after its last one.
const HeartbeatSubject = "jt.heartbeat"

// HeartbeatEvery is the interval of worker heartbeats.
const HeartbeatEvery = 2 * time.Second

// MsgID is the JetStream message id of the task and the gradient of
// (run, step, shard), so the server drops a republished duplicate.
func MsgID(run string, step uint64, shard int) string {
	return fmt.Sprintf("%s/%d/%d", run, step, shard)
}

// ParamsMsgID is the JetStream message id of a weights version.
func ParamsMsgID(run string, step uint64) string { return fmt.Sprintf("%s/params/%d", run, step) }

// StreamConfigs returns the configuration of every stream jettrain uses.
// replicas is 1 on a single server and 3 on a three-node cluster.
func StreamConfigs(replicas int) []jetstream.StreamConfig {
	if replicas < 1 {
		replicas = 1
	}
	return []jetstream.StreamConfig{
		{
			Name:        TasksStream,
			Description: "jettrain shard tasks, consumed once by any worker",
			Subjects:    []string{"jt.tasks.>"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			Duplicates:  2 * time.Minute,
		},
		{
			Name:        GradsStream,
			Description: "jettrain shard gradients: the write-ahead log replayed on recovery",
			Subjects:    []string{"jt.grads.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			Duplicates:  2 * time.Minute,
		},
		{
			Name:        ParamsStream,
			Description: "jettrain weights versions, one subject per step",
			Subjects:    []string{"jt.params.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxMsgs:     ParamsKept,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true, // workers read versions with direct gets: raw bytes, no JSON
			Duplicates:  2 * time.Minute,
		},
	}
}

// WorkersConsumerConfig is the durable pull consumer all workers share.
// A task not acknowledged within ackWait (workers extend it with InProgress
// while they compute) is redelivered to another worker.
func WorkersConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       WorkersConsumer,
		Description:   "jettrain workers share this consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		FilterSubject: "jt.tasks.>",
	}
}

// ParamsWildcard matches the weights versions of every run.
const ParamsWildcard = "jt.params.>"
