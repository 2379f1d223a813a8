package objstore

import (
	"bytes"
	"context"
)

// PutBest writes the tensors to runs/<run>/best.safetensors (see
// WriteSafetensors), replacing the previous best. It is independent of the
// commit protocol: write it after the commit whose history marks the epoch
// best, so a crash in between only leaves the previous best in place.
func (s *Store) PutBest(ctx context.Context, run string, tensors []Tensor) error {
	if err := ValidRun(run); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, tensors); err != nil {
		return err
	}
	return s.put(ctx, bestKey(run), buf.Bytes(), "application/octet-stream", false)
}

// GetBest reads runs/<run>/best.safetensors back; ErrNotFound if absent.
func (s *Store) GetBest(ctx context.Context, run string) ([]Tensor, error) {
	if err := ValidRun(run); err != nil {
		return nil, err
	}
	key := bestKey(run)
	data, _, err := s.getVerified(ctx, key, "")
	if err != nil {
		return nil, err
	}
	ts, err := ReadSafetensors(bytes.NewReader(data))
	if err != nil {
		return nil, s.corrupt(key, err)
	}
	return ts, nil
}
