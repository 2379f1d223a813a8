package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"
)

// DatasetKey names one file of a dataset: datasets/<name>/<digest>/<file>.
// The digest identifies the contents, so a key is written once and never
// changes; workers cache what they fetch under the same digest.
func DatasetKey(name, digest, file string) string {
	return "datasets/" + name + "/" + digest + "/" + file
}

func validDatasetPart(what, s string) error {
	if s == "" || len(s) > 128 || strings.ContainsAny(s, "/\\") || s == "." || s == ".." {
		return &Error{Op: "dataset", Kind: ErrInvalid, Err: fmt.Errorf("%s %q is not a plain name", what, s)}
	}
	return nil
}

func validDataset(name, digest, file string) error {
	return errors.Join(validDatasetPart("dataset", name), validDatasetPart("digest", digest), validDatasetPart("file", file))
}

// PutDatasetFile uploads a dataset file unless the bucket already has it.
func (s *Store) PutDatasetFile(ctx context.Context, name, digest, file string, data []byte) error {
	if err := validDataset(name, digest, file); err != nil {
		return err
	}
	key := DatasetKey(name, digest, file)
	_, err := s.core.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return nil
	}
	if err := s.fail("stat", opRead, key, err); !errors.Is(err, ErrNotFound) {
		return err
	}
	err = s.put(ctx, key, data, "application/octet-stream", true)
	if errors.Is(err, ErrConflict) {
		return nil // another coordinator uploaded it first
	}
	return err
}

// GetDatasetFile reads a dataset file, verified against the sha256
// recorded when it was uploaded.
func (s *Store) GetDatasetFile(ctx context.Context, name, digest, file string) ([]byte, error) {
	if err := validDataset(name, digest, file); err != nil {
		return nil, err
	}
	data, _, err := s.getVerified(ctx, DatasetKey(name, digest, file), "")
	return data, err
}
