package objstore

import (
	"bytes"
	"context"

	"github.com/minio/minio-go/v7"
)

// putRaw writes data under key recording sha as its checksum, as a damaged
// disk or a buggy writer would leave it.
func (s *Store) putRaw(ctx context.Context, key string, data []byte, sha string) error {
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{UserMetadata: map[string]string{metaSHA256: sha}, DisableMultipart: true})
	return err
}
