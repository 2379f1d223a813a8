package objstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// HistoryEntry is one finished epoch. history.json is a JSON array of them,
// one per finished epoch, in epoch order.
type HistoryEntry struct {
	Epoch       int     `json:"epoch"`
	Step        uint64  `json:"step"`
	TrainLoss   float64 `json:"train_loss"`
	TrainAcc    float64 `json:"train_acc"`
	ValidLoss   float64 `json:"valid_loss"`
	ValidAcc    float64 `json:"valid_acc"`
	DurationS   float64 `json:"duration_s"`
	SamplesPerS float64 `json:"samples_per_s"`
	Best        bool    `json:"best"`
}

func (h *HistoryEntry) floats() [6]float64 {
	return [6]float64{h.TrainLoss, h.TrainAcc, h.ValidLoss, h.ValidAcc, h.DurationS, h.SamplesPerS}
}

func (h *HistoryEntry) setFloats(f []float64) {
	h.TrainLoss, h.TrainAcc, h.ValidLoss, h.ValidAcc, h.DurationS, h.SamplesPerS = f[0], f[1], f[2], f[3], f[4], f[5]
}

// validateHistory checks what history.json promises: epochs strictly
// increasing and non-negative, no entry after step, finite numbers (JSON
// has no NaN).
func validateHistory(hs []HistoryEntry, step uint64) error {
	for i := range hs {
		h := &hs[i]
		if h.Epoch < 0 || h.Epoch > maxEpoch {
			return fmt.Errorf("%w: history entry %d: epoch %d out of range", ErrInvalid, i, h.Epoch)
		}
		if i > 0 && h.Epoch <= hs[i-1].Epoch {
			return fmt.Errorf("%w: history entry %d: epoch %d does not follow epoch %d", ErrInvalid, i, h.Epoch, hs[i-1].Epoch)
		}
		if i > 0 && h.Step < hs[i-1].Step {
			return fmt.Errorf("%w: history entry %d: step %d before step %d", ErrInvalid, i, h.Step, hs[i-1].Step)
		}
		if h.Step > step {
			return fmt.Errorf("%w: history entry %d: step %d is ahead of the checkpoint step %d", ErrInvalid, i, h.Step, step)
		}
		for _, f := range h.floats() {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%w: history entry %d (epoch %d): non-finite value %v", ErrInvalid, i, h.Epoch, f)
			}
		}
	}
	return nil
}

// encodeHistory is the exact content of history.json: an indented JSON
// array ("[]" when empty) with a final newline.
func encodeHistory(hs []HistoryEntry) []byte {
	if hs == nil {
		hs = []HistoryEntry{}
	}
	b, err := json.MarshalIndent(hs, "", "  ")
	if err != nil { // unreachable: validated entries hold only finite numbers
		panic(err)
	}
	return append(b, '\n')
}

// History returns runs/<run>/history.json. It is ErrNotFound before the
// first commit and ErrCorrupt if the object does not decode.
func (s *Store) History(ctx context.Context, run string) ([]HistoryEntry, error) {
	if err := ValidRun(run); err != nil {
		return nil, err
	}
	key := historyKey(run)
	obj, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.decodeHistory(key, obj.data)
}

func (s *Store) decodeHistory(key string, data []byte) ([]HistoryEntry, error) {
	var hs []HistoryEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hs); err != nil {
		return nil, s.corrupt(key, err)
	}
	if hs == nil {
		return nil, s.corrupt(key, fmt.Errorf("not a JSON array"))
	}
	if err := validateHistory(hs, math.MaxUint64); err != nil {
		return nil, s.corrupt(key, err)
	}
	return hs, nil
}

// repairHistory rewrites history.json when it differs from want (the
// committed checkpoint's history) and says so through warn.
func (s *Store) repairHistory(ctx context.Context, run string, want []HistoryEntry, warn func(string)) error {
	key := historyKey(run)
	wantBytes := encodeHistory(want)
	obj, err := s.get(ctx, key)
	reason := ""
	switch {
	case err == nil && bytes.Equal(obj.data, wantBytes):
		return nil
	case err == nil:
		have, derr := s.decodeHistory(key, obj.data)
		if derr != nil {
			reason = "it does not decode"
		} else {
			reason = historyDiffers(have, want)
		}
	case errors.Is(err, ErrNotFound):
		reason = "it is missing"
	default:
		return err
	}
	if err := s.put(ctx, key, wantBytes, "application/json", false); err != nil {
		return err
	}
	warn(fmt.Sprintf("objstore: rewrote %s/%s/%s from the committed checkpoint: %s", s.cfg.Endpoint, s.cfg.Bucket, key, reason))
	return nil
}

// historyDiffers says how have, history.json's entries, differs from want,
// the committed checkpoint's.
func historyDiffers(have, want []HistoryEntry) string {
	if len(have) != len(want) {
		return fmt.Sprintf("it has %d entries, the checkpoint %d", len(have), len(want))
	}
	for i := range have {
		if have[i] != want[i] {
			return fmt.Sprintf("its entry for epoch %d differs from the checkpoint's", want[i].Epoch)
		}
	}
	return "its bytes differ from the checkpoint's history (the same entries)"
}
