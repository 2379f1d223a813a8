package protocol

import (
	"bytes"
	"context"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// PutSnapshot stores p, a snapshot, as its run's object in obs (the
// StateBucket object store), replacing the previous one, with its step in
// the object's metadata, in chunks that fit a server's maxPayload.
func PutSnapshot(ctx context.Context, obs jetstream.ObjectStore, p *Params, maxPayload int64) error {
	b, err := p.MarshalBinary()
	if err != nil {
		return err
	}
	meta := jetstream.ObjectMeta{
		Name:     StateObject(p.Run),
		Metadata: map[string]string{stateStepKey: strconv.FormatUint(p.Step, 10)},
		Opts:     &jetstream.ObjectMetaOptions{ChunkSize: uint32(max(min(snapshotChunk, maxPayload-chunkHeaders), 1))},
	}
	_, err = obs.Put(ctx, meta, bytes.NewReader(b))
	return err
}

// snapshotChunk is the size of a snapshot's chunks (the object store's
// default) on a server that takes them; chunkHeaders is what a chunk's
// message needs besides its bytes.
const (
	snapshotChunk = 128 << 10
	chunkHeaders  = 1 << 10
)

// SnapshotStep is the step of the snapshot info describes, as its metadata
// says; ok is false when it does not say.
func SnapshotStep(info *jetstream.ObjectInfo) (step uint64, ok bool) {
	step, err := strconv.ParseUint(info.Metadata[stateStepKey], 10, 64)
	return step, err == nil
}
