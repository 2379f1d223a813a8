package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jettrain/jettrain/config"
	"github.com/jettrain/jettrain/model"
	"github.com/jettrain/jettrain/objstore"
	"github.com/jettrain/jettrain/protocol"
)

// shareDataset uploads the run's dataset files to the bucket (once per
// digest) and tells workers where they are, so a worker on a machine
// without the files fetches them instead of failing. Generated datasets
// need nothing.
func shareDataset(ctx context.Context, store *objstore.Store, kv jetstream.KeyValue, run string, cfg config.Config, ds *model.Dataset) error {
	if cfg.Dataset != model.DatasetFashionMNIST {
		return nil
	}
	dir := cfg.DataDir
	if dir == "" {
		dir = model.DefaultFashionMNISTDir
	}
	ref := protocol.DatasetRef{Name: cfg.Dataset, Digest: ds.Digest}
	for _, f := range model.FashionMNISTFiles {
		name := f
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			name = strings.TrimSuffix(f, ".gz")
			data, err = os.ReadFile(filepath.Join(dir, name))
		}
		if err != nil {
			return err
		}
		if err := store.PutDatasetFile(ctx, ref.Name, ref.Digest, name, data); err != nil {
			return err
		}
		ref.Files = append(ref.Files, name)
	}
	b, _ := json.Marshal(ref)
	_, err := kv.Put(ctx, protocol.DatasetKey(run), b)
	return err
}
