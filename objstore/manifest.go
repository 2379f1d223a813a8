package objstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/jettrain/jettrain/internal/digest"
)

// Manifest is runs/<run>/checkpoint.json, the commit point of a run: it
// names the newest committed checkpoint and its checksum. Writing it is
// the last step of Commit.
type Manifest struct {
	Run           string `json:"run"`
	Key           string `json:"key"`
	SHA256        string `json:"sha256"` // of the checkpoint object's bytes
	Size          int64  `json:"size"`
	Step          uint64 `json:"step"`
	Epoch         int    `json:"epoch"`
	GradsSeq      uint64 `json:"grads_seq"`
	HistoryLen    int    `json:"history_len"`
	WeightsSHA256 string `json:"weights_sha256"` // WeightsDigest of the weights
}

// WeightsDigest is the sha256 of the weights as consecutive little-endian
// float32 values, in hex (model.Digest).
func WeightsDigest(w []float32) string {
	d := digest.Weights(w)
	return hex.EncodeToString(d[:])
}

// manifestFor is the manifest of ck stored under key as data, whose
// sha256 (hex) is sum.
func manifestFor(ck *Checkpoint, key string, data []byte, sum string) Manifest {
	return Manifest{
		Run:           ck.Run,
		Key:           key,
		SHA256:        sum,
		Size:          int64(len(data)),
		Step:          ck.Step,
		Epoch:         ck.Epoch,
		GradsSeq:      ck.GradsSeq,
		HistoryLen:    len(ck.History),
		WeightsSHA256: WeightsDigest(ck.Weights),
	}
}

func (m Manifest) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// Manifest returns the run's commit point: ErrNotFound before the first
// commit, ErrCorrupt if checkpoint.json does not decode or is inconsistent.
func (s *Store) Manifest(ctx context.Context, run string) (Manifest, error) {
	if err := ValidRun(run); err != nil {
		return Manifest{}, err
	}
	key := manifestKey(run)
	obj, err := s.get(ctx, key)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(obj.data))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, s.corrupt(key, err)
	}
	if step, ok := parseCheckpointKey(run, m.Key); !ok || step != m.Step || m.Size < 0 || len(m.SHA256) != 64 ||
		(m.Run != "" && m.Run != run) || m.HistoryLen < 0 || m.Epoch < 0 {
		return Manifest{}, s.corrupt(key, fmt.Errorf("inconsistent manifest (key %q, step %d)", m.Key, m.Step))
	}
	m.Run = run
	return m, nil
}
