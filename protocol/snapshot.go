package protocol

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

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

// ReadSnapshot reads the snapshot of run from obs. The coordinator replaces
// it with every checkpoint, and the object store then deletes the chunks of
// the old one, also from under a reader, which would wait for them until
// its context ended. ReadSnapshot watches the object while it reads it and,
// when another object takes its name, starts over on that one; it also
// starts over a read that no byte reached for readStall (see there).
func ReadSnapshot(ctx context.Context, obs jetstream.ObjectStore, run string) ([]byte, error) {
	for {
		raw, err := readObject(ctx, obs, StateObject(run))
		if !errors.Is(err, errReplaced) && !errors.Is(err, errStalled) {
			return raw, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// replacedEvery is how often a snapshot read checks whether its object was
// replaced.
const replacedEvery = 100 * time.Millisecond

// errReplaced is what a read given up for a replaced object returns.
var errReplaced = errors.New("protocol: snapshot replaced while it was read")

// errStalled is what a read given up after readStall without a byte
// returns.
var errStalled = errors.New("protocol: snapshot read stalled")

// readStall is how long a snapshot read may go without a byte before it
// is started over. The client reads an object's chunks through a consumer
// of their own; when the stream's leader is lost (a node of a cluster
// killed) and the client cannot make that consumer again during the
// election, no chunk ever comes, and the read would wait for its whole
// context. A new read makes a new consumer.
var readStall = 5 * time.Second

// readObject reads the object name once; errReplaced reports that another
// object took the name meanwhile, and errStalled that no byte came for
// readStall, and the read was given up.
//
// The client's read of a chunk holds the result until a chunk comes or its
// deadline passes (the context's, or 5 s), and neither a cancellation nor
// Close cuts it short: a read given up is left to end on its own, in its
// goroutine, which then closes the result.
func readObject(ctx context.Context, obs jetstream.ObjectStore, name string) ([]byte, error) {
	res, err := obs.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	info, err := res.Info()
	if err != nil {
		res.Close()
		return nil, err
	}
	type read struct {
		raw []byte
		err error
	}
	done := make(chan read, 1)
	var got atomic.Int64 // bytes read so far
	go func() {
		raw, err := io.ReadAll(countingReader{res, &got})
		res.Close()
		done <- read{raw, err}
	}()
	t := time.NewTicker(replacedEvery)
	defer t.Stop()
	seen, moved := int64(0), time.Now()
	for {
		select {
		case r := <-done:
			return r.raw, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		if n := got.Load(); n != seen {
			seen, moved = n, time.Now()
		} else if time.Since(moved) >= readStall {
			select {
			case r := <-done:
				return r.raw, r.err
			default:
				return nil, errStalled
			}
		}
		cur, err := obs.GetInfo(ctx, name)
		if err == nil && cur.NUID != info.NUID || errors.Is(err, jetstream.ErrObjectNotFound) {
			select {
			case r := <-done: // finished meanwhile: the old object, whole
				return r.raw, r.err
			default:
				return nil, errReplaced
			}
		}
	}
}

// countingReader adds the bytes each read returns to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
