package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/protocol"
)

// DatasetSource serves the dataset files a coordinator shared
// (objstore.Store is one).
type DatasetSource interface {
	GetDatasetFile(ctx context.Context, name, digest, file string) ([]byte, error)
}

// fetcher brings a run's dataset from a DatasetSource into a cache
// directory keyed by the dataset's digest, once per machine.
type fetcher struct {
	src   DatasetSource
	cache string // <cache>/datasets/<name>/<digest>/<file>
}

// sharedCopy is what the coordinator shared of a run's dataset: ref, if
// found; why there is none to use otherwise.
type sharedCopy struct {
	ref   protocol.DatasetRef
	found bool
	why   string
}

// sharedDataset looks up the description of run's dataset the coordinator
// shared (it shares none of a generated dataset, nor when it could not
// upload the files). Only a lookup the broker did not answer is an error
// (errRunOutOfReach); losses bounds it.
func sharedDataset(ctx context.Context, losses *natsconn.Losses, kv jetstream.KeyValue, run string) (sharedCopy, error) {
	gctx, cancel := losses.Bound(ctx, lookupWait)
	e, err := kv.Get(gctx, protocol.DatasetKey(run))
	cancel()
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return sharedCopy{why: "the coordinator shared no copy"}, nil
	}
	if err != nil {
		return sharedCopy{}, fmt.Errorf("%w: whether the coordinator shared run %s's dataset: %w", errRunOutOfReach, run, err)
	}
	var ref protocol.DatasetRef
	if err := json.Unmarshal(e.Value(), &ref); err != nil || ref.Name != model.DatasetFashionMNIST {
		return sharedCopy{why: "the shared copy's description is unusable"}, nil
	}
	if err := ref.Validate(); err != nil {
		return sharedCopy{why: fmt.Sprintf("the shared copy's description is unusable: %v", err)}, nil
	}
	return sharedCopy{ref: ref, found: true}, nil
}

// dataset loads the shared copy of a run's dataset from the cache,
// fetching it first if needed, and checks its digest. local is the error of
// the local load, kept in the message when there is nothing to fetch.
func (f *fetcher) dataset(ctx context.Context, shared sharedCopy, local error) (*model.Dataset, error) {
	if !shared.found {
		return nil, fmt.Errorf("%w (and %s)", local, shared.why)
	}
	ref := shared.ref
	dir := filepath.Join(f.cache, "datasets", ref.Name, ref.Digest)
	ds, err := model.LoadDataset(ref.Name, dir)
	if err == nil && ds.Digest == ref.Digest {
		return ds, nil
	}
	if err == nil {
		// A cached copy that is not what its directory names (damaged
		// since, or written by something else): fetched again.
		model.DropDataset(ref.Name, dir)
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("worker: dataset cache: %w", err)
		}
	}
	if err := f.download(ctx, ref, dir); err != nil {
		return nil, err
	}
	if ds, err = model.LoadDataset(ref.Name, dir); err != nil {
		return nil, err
	}
	if ds.Digest != ref.Digest {
		return nil, fmt.Errorf("worker: dataset in %s has digest %s, want %s", dir, ds.Digest, ref.Digest)
	}
	return ds, nil
}

// download writes every file of ref into dir, each through a temporary
// file renamed into place, so a crash never leaves a half-written file.
func (f *fetcher) download(ctx context.Context, ref protocol.DatasetRef, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("worker: dataset cache: %w", err)
	}
	for _, name := range ref.Files { // plain names (DatasetRef.Validate)
		data, err := f.src.GetDatasetFile(ctx, ref.Name, ref.Digest, name)
		if err != nil {
			return fmt.Errorf("worker: fetching dataset file %s: %w", name, err)
		}
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return fmt.Errorf("worker: dataset cache: %w", err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("worker: dataset cache: %w", err)
		}
	}
	return nil
}
