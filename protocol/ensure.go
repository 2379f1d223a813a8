package protocol

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates or updates every stream, the snapshot store, the workers'
// consumer and the buckets, jettrain's and those the caller adds. The
// consumer gets ackWait; with ackWait 0 an existing consumer keeps its own,
// and a new one gets DefaultAckWait. The
// coordinator calls it; workers only look them up (the streams and the
// snapshot store exist before the consumer).
//
// On a cluster, creating a replicated stream (a bucket is one too) waits for
// its replicas to elect a leader: the streams and buckets are created at
// once, not one after another. And when two coordinators (a leader and its
// standby) create the same stream at once, the cluster may answer neither
// though it created the stream: a creation (of the consumer too) that gets
// no answer within createWait counts as done if what it creates is there.
// One after another, and each unanswered creation retried with the whole
// start-up, a coordinator on a fresh three-node cluster took 54 s to start.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int, ackWait time.Duration, buckets ...jetstream.KeyValueConfig) error {
	var creates []func() error
	for _, cfg := range StreamConfigs(replicas) {
		creates = append(creates, creation(ctx, "stream "+cfg.Name,
			func(ctx context.Context) (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, cfg) },
			func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) }))
	}
	state := jetstream.ObjectStoreConfig{
		Bucket:      StateBucket,
		Description: "jettrain run snapshots (weights and optimizer state) workers start from",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		TTL:         StateTTL,
	}
	creates = append(creates, creation(ctx, "object store "+StateBucket,
		func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.CreateOrUpdateObjectStore(ctx, state)
		},
		func(ctx context.Context) (jetstream.ObjectStore, error) { return js.ObjectStore(ctx, StateBucket) }))
	buckets = append([]jetstream.KeyValueConfig{{
		Bucket:      RunsBucket,
		Description: "jettrain resolved run configurations by signature",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	}, {
		Bucket:      StatusBucket,
		Description: "jettrain live progress of each run",
		Storage:     jetstream.FileStorage, // survives a broker restart between creation and use
		Replicas:    max(replicas, 1),
		TTL:         time.Hour,
	}}, buckets...)
	for _, cfg := range buckets {
		creates = append(creates, creation(ctx, "bucket "+cfg.Bucket,
			func(ctx context.Context) (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, cfg) },
			func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, cfg.Bucket) }))
	}
	if err := all(creates...); err != nil {
		return err
	}
	return creation(ctx, "consumer "+WorkersConsumer,
		func(ctx context.Context) (jetstream.Consumer, error) {
			if ackWait > 0 {
				return js.CreateOrUpdateConsumer(ctx, TasksStream, WorkersConsumerConfig(ackWait))
			}
			cons, err := js.CreateConsumer(ctx, TasksStream, WorkersConsumerConfig(DefaultAckWait))
			if !errors.Is(err, jetstream.ErrConsumerExists) {
				return cons, err
			}
			// Updated but for its ack wait, which stays.
			if cons, err = js.Consumer(ctx, TasksStream, WorkersConsumer); err != nil {
				return nil, err
			}
			return js.UpdateConsumer(ctx, TasksStream, WorkersConsumerConfig(cons.CachedInfo().Config.AckWait))
		},
		func(ctx context.Context) (jetstream.Consumer, error) {
			return js.Consumer(ctx, TasksStream, WorkersConsumer)
		})()
}

// creation is ensureOne of what, bounded by createWait, to be run by all:
// create makes it, lookup finds it after an unanswered creation.
func creation[T any](ctx context.Context, what string, create, lookup func(context.Context) (T, error)) func() error {
	return func() error {
		return ensureOne(ctx, createWait, what,
			func(ctx context.Context) error { _, err := create(ctx); return err },
			func(ctx context.Context) error { _, err := lookup(ctx); return err })
	}
}

// createWait is how long Ensure waits for the answer to a creation before it
// looks for what it created.
const createWait = 5 * time.Second

// ensureOne runs create, bounded by wait; when no answer came, what was
// created counts as done if exists finds it.
func ensureOne(ctx context.Context, wait time.Duration, what string, create, exists func(context.Context) error) error {
	cctx, cancel := context.WithTimeout(ctx, wait)
	err := create(cctx)
	cancel()
	if err != nil && ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) && exists(ctx) == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("protocol: %s: %w", what, err)
	}
	return nil
}

// all runs fs at once and returns the error of the first of them, in the
// order given, that failed.
func all(fs ...func() error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrNotReady means the coordinator has not created the streams yet.
var ErrNotReady = errors.New("protocol: jettrain streams not created yet (is a coordinator running?)")

// Lookup returns the workers' consumer and the runs bucket, or ErrNotReady.
func Lookup(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, jetstream.KeyValue, error) {
	cons, err := js.Consumer(ctx, TasksStream, WorkersConsumer)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, nil, ErrNotReady
	}
	if err != nil {
		return nil, nil, err
	}
	kv, err := js.KeyValue(ctx, RunsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil, ErrNotReady
	}
	return cons, kv, err
}
