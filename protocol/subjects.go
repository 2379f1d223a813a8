package protocol

import (
	"fmt"
	"strconv"
	"strings"
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
	// StateBucket is the object store holding each run's newest snapshot
	// (weights and optimizer state, many times a gradient's size), which
	// the store splits into chunks: a snapshot need not fit a message.
	StateBucket = "jt-state"

	// MaxPayload is the max_payload the embedded NATS server runs with.
	MaxPayload = 8 << 20

	// ParamsKept is how many commit records ParamsStream keeps, over all
	// runs (each is under a hundred bytes).
	ParamsKept = 1 << 16
)

// TasksSubject is where the coordinator of run publishes shard tasks.
func TasksSubject(run string) string { return "jt.tasks." + run }

// GradsPrefix begins every GradSubject.
const GradsPrefix = "jt.grads."

// GradSubject is where a worker publishes the gradient of (run, step,
// shard): one subject per shard, so anyone can fetch a shard's gradient by
// subject with a direct get. A gradient of shards 0..n-1 goes on shard 0's.
func GradSubject(run string, step uint64, shard int) string {
	return fmt.Sprintf("jt.grads.%s.%d.%d", run, step, shard)
}

// GradSubjectStep is the step of a GradSubject; ok is false for any
// other subject.
func GradSubjectStep(subject string) (step uint64, ok bool) {
	rest, ok := strings.CutPrefix(subject, GradsPrefix)
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || parts[0] == "" {
		return 0, false
	}
	if _, err := strconv.ParseUint(parts[2], 10, 16); err != nil {
		return 0, false
	}
	step, err := strconv.ParseUint(parts[1], 10, 64)
	return step, err == nil
}

// GradsFilter matches every gradient of run.
func GradsFilter(run string) string { return GradsPrefix + run + ".>" }

// ParamsSubject is where the commit record of weights version step of run
// is published: written once, by the coordinator that commits the step. It
// names the codec version, so the records of another jettrain version (a
// run resumed after an upgrade, or a coordinator of the other version in a
// mixed rollout) never take the subject of this one's.
func ParamsSubject(run string, step uint64) string {
	return fmt.Sprintf("jt.params.v%d.%s.%d", Version, run, step)
}

// StateObject names, in StateBucket, the newest snapshot of run (weights
// and optimizer state) that a worker can start from.
func StateObject(run string) string { return run }

// stateStepKey is the object metadata key holding a snapshot's step, so a
// worker tells whether a snapshot is newer than its replica without reading
// it.
const stateStepKey = "step"

// StateTTL is how long a run's snapshot outlives its last update:
// snapshots of finished runs go eventually.
const StateTTL = 7 * 24 * time.Hour

// HeartbeatSubject carries worker heartbeats (core NATS, not persisted).
// Workers send one every HeartbeatEvery; a coordinator counts a worker as
// alive for three intervals after its last one.
const HeartbeatSubject = "jt.heartbeat"

// RefusalSubject carries workers' reports of gradients the broker refused
// for want of room ([Refusal]; core NATS, not persisted).
const RefusalSubject = "jt.refused"

// HeartbeatEvery is the interval of worker heartbeats.
const HeartbeatEvery = 2 * time.Second

// MsgID is the JetStream message id of the task of (run, step, shard), so
// the server drops a republished duplicate. It names the codec version: a
// task that an earlier version published is not a duplicate of this one's.
func MsgID(run string, step uint64, shard int) string {
	return fmt.Sprintf("%s/%d/%d/v%d", run, step, shard, Version)
}

// GradMsgID is the JetStream message id of the gradient of shards
// [shard, shard+shards) of (run, step) computed on the weights whose check
// is weights: a retried publish is dropped as a duplicate, while a
// gradient on other weights (which the coordinator rejects) never shadows
// the right one.
func GradMsgID(run string, step uint64, shard, shards int, weights [8]byte) string {
	return fmt.Sprintf("%s/%d/%d+%d/%x", run, step, shard, shards, weights)
}

// WorkerHeader is the header of a gradient message that names the worker
// that published it, as the gradient's Worker field does: a reader of the
// stream's headers alone (a coordinator taking in-process workers'
// gradients from memory) learns from it, with the message id, whose
// bytes the message holds.
const WorkerHeader = "Jettrain-Worker"

// GradPartMsgID is the JetStream message id of the values
// [offset, offset+n) of the gradient GradMsgID names. Two workers that
// split one gradient alike send the same parts under the same ids.
func GradPartMsgID(run string, step uint64, shard, shards int, weights [8]byte, offset, n int) string {
	return fmt.Sprintf("%s/%d+%d", GradMsgID(run, step, shard, shards, weights), offset, n)
}

// ParamsMsgID is the JetStream message id of a weights version's commit
// record. It names the codec version, so a record written again after an
// upgrade is not dropped as a duplicate of the old one.
func ParamsMsgID(run string, step uint64) string {
	return fmt.Sprintf("%s/params/%d/v%d", run, step, Version)
}

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
			AllowDirect: true, // workers fetch a shard's gradient they missed by subject
			Duplicates:  2 * time.Minute,
		},
		{
			Name:        ParamsStream,
			Description: "jettrain step commit records (weights checks), one subject per step",
			Subjects:    []string{"jt.params.>"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxMsgs:     ParamsKept,
			Discard:     jetstream.DiscardOld,
			AllowDirect: true, // workers read records with direct gets: raw bytes, no JSON
			Duplicates:  2 * time.Minute,
		},
	}
}

// DefaultAckWait is the workers' consumer's ack wait unless a coordinator
// sets another (coordinator start --ack-wait).
const DefaultAckWait = 10 * time.Second

// ConsumerChangedSubject carries a coordinator's notice that it changed the
// workers' consumer (its ack wait): workers read its configuration again at
// once rather than at their next periodic look (core NATS, no payload).
const ConsumerChangedSubject = "jt.consumer.changed"

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

// ParamsWildcard matches the commit records of every run.
const ParamsWildcard = "jt.params.>"
