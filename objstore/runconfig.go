package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// PutConfig writes runs/<run>/config.json once. Writing the same bytes
// again is a no-op; different bytes give ErrConflict, so a run's resolved
// config can never change under its signature. The write is a conditional
// create (If-None-Match: *), so two coordinators racing cannot both win.
func (s *Store) PutConfig(ctx context.Context, run string, resolved []byte) error {
	if err := ValidRun(run); err != nil {
		return err
	}
	key := configKey(run)
	existing, err := s.get(ctx, key)
	switch {
	case err == nil:
		return s.sameConfig(key, existing.data, resolved)
	case !errors.Is(err, ErrNotFound):
		return err
	}
	err = s.put(ctx, key, resolved, "application/json", true)
	if !errors.Is(err, ErrConflict) {
		return err
	}
	existing, err = s.get(ctx, key)
	if err != nil {
		return err
	}
	return s.sameConfig(key, existing.data, resolved)
}

func (s *Store) sameConfig(key string, have, want []byte) error {
	if bytes.Equal(have, want) {
		return nil
	}
	return &Error{Op: "put", Endpoint: s.cfg.Endpoint, Bucket: s.cfg.Bucket, Key: key, Kind: ErrConflict,
		Err: fmt.Errorf("the run already has a different config (%d bytes stored, %d given)", len(have), len(want))}
}

// GetConfig returns runs/<run>/config.json; ErrNotFound if absent.
func (s *Store) GetConfig(ctx context.Context, run string) ([]byte, error) {
	if err := ValidRun(run); err != nil {
		return nil, err
	}
	obj, err := s.get(ctx, configKey(run))
	if err != nil {
		return nil, err
	}
	return obj.data, nil
}
