package chaos

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/jettrain/jettrain/objstore"
)

// damageNewestCheckpoint overwrites the run's newest checkpoint object
// with junk, as a disk or a careless hand might, and says which.
func (c *cluster) damageNewestCheckpoint(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := objstore.Open(ctx, objstore.Config{Endpoint: c.s3.url(), AccessKey: s3Access, SecretKey: s3Secret})
	if err != nil {
		return "", err
	}
	runs, err := st.Runs(ctx)
	if err != nil || len(runs) != 1 {
		return fmt.Sprintf("no checkpoint damaged: runs %v (%v)", runs, err), nil
	}
	steps, err := st.Checkpoints(ctx, runs[0])
	if err != nil || len(steps) < 2 {
		return fmt.Sprintf("no checkpoint damaged: checkpoints %v (%v)", steps, err), nil
	}
	mc, err := minio.New(strings.TrimPrefix(c.s3.url(), "http://"), &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, "")})
	if err != nil {
		return "", err
	}
	key := objstore.CheckpointKey(runs[0], steps[0])
	junk := []byte("not a checkpoint")
	if _, err := mc.PutObject(ctx, objstore.DefaultBucket, key, bytes.NewReader(junk), int64(len(junk)), minio.PutObjectOptions{}); err != nil {
		return "", fmt.Errorf("chaos: damaging %s: %w", key, err)
	}
	c.logf("fault checkpoint: damaged %s", key)
	return fmt.Sprintf("damaged the checkpoint of step %d", steps[0]), nil
}
