package protocol

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure creates or updates every stream, the snapshot store, the workers'
// consumer and the buckets. The coordinator calls it; workers only look them
// up (the streams and the snapshot store exist before the consumer).
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int, ackWait time.Duration) error {
	for _, cfg := range StreamConfigs(replicas) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("protocol: stream %s: %w", cfg.Name, err)
		}
	}
	_, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      StateBucket,
		Description: "jettrain run snapshots (weights and optimizer state) workers start from",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		TTL:         StateTTL,
	})
	if err != nil {
		return fmt.Errorf("protocol: object store %s: %w", StateBucket, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, TasksStream, WorkersConsumerConfig(ackWait)); err != nil {
		return fmt.Errorf("protocol: consumer %s: %w", WorkersConsumer, err)
	}
	_, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      RunsBucket,
		Description: "jettrain resolved run configurations by signature",
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return fmt.Errorf("protocol: bucket %s: %w", RunsBucket, err)
	}
	_, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StatusBucket,
		Description: "jettrain live progress of each run",
		Storage:     jetstream.FileStorage, // survives a broker restart between creation and use
		Replicas:    max(replicas, 1),
		TTL:         time.Hour,
	})
	if err != nil {
		return fmt.Errorf("protocol: bucket %s: %w", StatusBucket, err)
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
