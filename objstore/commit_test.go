package objstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const testRun = "0123456789abcdef"

func testCheckpoint(step uint64, epochs int) *Checkpoint {
	ck := &Checkpoint{Run: testRun, Step: step, Epoch: epochs, GradsSeq: step*4 + 1,
		Weights: make([]float32, 1000), OptState: []byte("opt"), Partial: []byte{1, 2, 3}}
	for i := range ck.Weights {
		ck.Weights[i] = float32(step) + float32(i)/1000
	}
	for e := 0; e < epochs; e++ {
		ck.History = append(ck.History, HistoryEntry{Epoch: e, Step: uint64(e+1) * step / uint64(epochs+1),
			TrainLoss: 1 / float64(e+1), TrainAcc: 0.5, ValidLoss: 0.7, ValidAcc: 0.8, DurationS: 1.5, SamplesPerS: 1e4, Best: e == epochs-1})
	}
	return ck
}

func TestCommitLatestRoundTrip(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		if _, _, err := s.Latest(ctx, testRun, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Latest on an empty run: %v, want ErrNotFound", err)
		}
		want := testCheckpoint(10, 2)
		m, err := s.Commit(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		if m.Key != "runs/"+testRun+"/checkpoints/000000000010" || m.Step != 10 || m.HistoryLen != 2 || m.WeightsSHA256 != WeightsDigest(want.Weights) {
			t.Fatalf("manifest %+v", m)
		}
		got, gm, err := s.Latest(ctx, testRun, func(w string) { t.Errorf("unexpected warning: %s", w) })
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || gm != m {
			t.Fatalf("Latest = %+v %+v, want %+v %+v", got, gm, want, m)
		}
		hs, err := s.History(ctx, testRun)
		if err != nil || !reflect.DeepEqual(hs, want.History) {
			t.Fatalf("History = %v, %v", hs, err)
		}
		runs, err := s.Runs(ctx)
		if err != nil || !reflect.DeepEqual(runs, []string{testRun}) {
			t.Fatalf("Runs = %v, %v", runs, err)
		}
	})
}

// A crash after the checkpoint object is written but before the manifest
// leaves the previous commit in force.
func TestManifestIsTheCommitPoint(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		if _, err := s.Commit(ctx, testCheckpoint(10, 1)); err != nil {
			t.Fatal(err)
		}
		next := testCheckpoint(20, 2)
		data, _ := next.MarshalBinary()
		if err := s.put(ctx, CheckpointKey(testRun, 20), data, "", false); err != nil {
			t.Fatal(err)
		}
		got, m, err := s.Latest(ctx, testRun, func(w string) { t.Errorf("unexpected warning: %s", w) })
		if err != nil || got.Step != 10 || m.Step != 10 {
			t.Fatalf("Latest after a crashed commit: step %v, %v", m.Step, err)
		}
		hs, _ := s.History(ctx, testRun)
		if len(hs) != 1 {
			t.Fatalf("history has %d entries, want 1", len(hs))
		}
	})
}

func TestCorruptNewestFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/2] ^= 0xff; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-100] }},
		{"empty", func(b []byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers(t, func(t *testing.T, endpoint string) {
				s := openTest(t, endpoint)
				ctx := testCtx(t)
				for _, step := range []uint64{10, 20, 30} {
					if _, err := s.Commit(ctx, testCheckpoint(step, int(step/10))); err != nil {
						t.Fatal(err)
					}
				}
				key := CheckpointKey(testRun, 30)
				obj, err := s.get(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				// Rewrite the bytes in place as a damaged disk would, keeping
				// the recorded sha256 of the good bytes.
				if err := s.putRaw(ctx, key, tc.damage(obj.data), obj.sha256); err != nil {
					t.Fatal(err)
				}
				var warnings []string
				got, m, err := s.Latest(ctx, testRun, func(w string) { warnings = append(warnings, w) })
				if err != nil {
					t.Fatal(err)
				}
				if got.Step != 20 || m.Step != 20 || m.Key != CheckpointKey(testRun, 20) {
					t.Fatalf("fell back to step %d (%s), want 20", got.Step, m.Key)
				}
				if len(warnings) != 2 || !strings.Contains(warnings[0], key) || !strings.Contains(warnings[0], "corrupt") ||
					strings.Contains(warnings[0], "\n") || !strings.Contains(warnings[1], "history.json") {
					t.Fatalf("warnings %q", warnings)
				}
				hs, _ := s.History(ctx, testRun)
				if len(hs) != 2 {
					t.Fatalf("history has %d entries after the fallback, want 2", len(hs))
				}
			})
		})
	}
}

func TestHistoryRepaired(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		ck := testCheckpoint(30, 3)
		if _, err := s.Commit(ctx, ck); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]byte{[]byte("[{\"epoch\":0}]"), []byte("not json"), nil} {
			if bad == nil {
				if err := s.remove(ctx, historyKey(testRun)); err != nil {
					t.Fatal(err)
				}
			} else if err := s.put(ctx, historyKey(testRun), bad, "", false); err != nil {
				t.Fatal(err)
			}
			var warnings []string
			if _, _, err := s.Latest(ctx, testRun, func(w string) { warnings = append(warnings, w) }); err != nil {
				t.Fatal(err)
			}
			hs, err := s.History(ctx, testRun)
			if err != nil || !reflect.DeepEqual(hs, ck.History) || len(warnings) != 1 {
				t.Fatalf("after repairing %q: %v %v, warnings %q", bad, hs, err, warnings)
			}
		}
	})
}

func TestRetention(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		// An uncommitted leftover from a crash ahead of the commits.
		data, _ := testCheckpoint(90, 1).MarshalBinary()
		if err := s.put(ctx, CheckpointKey(testRun, 90), data, "", false); err != nil {
			t.Fatal(err)
		}
		for step := uint64(10); step <= 60; step += 10 {
			if _, err := s.Commit(ctx, testCheckpoint(step, 1)); err != nil {
				t.Fatal(err)
			}
			steps, err := s.Checkpoints(ctx, testRun)
			if err != nil {
				t.Fatal(err)
			}
			var want []uint64
			want = append(want, 90)
			for k := step; k >= 10 && len(want) < 4; k -= 10 {
				want = append(want, k)
			}
			if !reflect.DeepEqual(steps, want) {
				t.Fatalf("after committing %d: checkpoints %v, want %v", step, steps, want)
			}
		}
		// Committing an older step (after a fallback) never deletes it.
		if _, err := s.Commit(ctx, testCheckpoint(5, 1)); err != nil {
			t.Fatal(err)
		}
		steps, _ := s.Checkpoints(ctx, testRun)
		if !reflect.DeepEqual(steps, []uint64{90, 60, 50, 40, 5}) {
			t.Fatalf("checkpoints %v", steps)
		}
	})
}

// TestCommitKeepingKeepsWhatTheRunAsks: a run's own keep overrides the
// store's Keep (3 here), both ways.
func TestCommitKeepingKeepsWhatTheRunAsks(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		for _, keep := range []int{5, 2} {
			for step := uint64(10); step <= 60; step += 10 {
				if _, err := s.CommitKeeping(ctx, testCheckpoint(step, 1), keep); err != nil {
					t.Fatal(err)
				}
			}
			steps, err := s.Checkpoints(ctx, testRun)
			if err != nil {
				t.Fatal(err)
			}
			if len(steps) != keep || steps[0] != 60 {
				t.Fatalf("keep %d: checkpoints %v, want the newest %d", keep, steps, keep)
			}
		}
	})
}

func TestPutConfig(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		if _, err := s.GetConfig(ctx, testRun); !errors.Is(err, ErrNotFound) {
			t.Fatalf("GetConfig before PutConfig: %v", err)
		}
		cfg := []byte(`{"model":"mlp"}`)
		if err := s.PutConfig(ctx, testRun, cfg); err != nil {
			t.Fatal(err)
		}
		if err := s.PutConfig(ctx, testRun, cfg); err != nil {
			t.Fatalf("same config again: %v", err)
		}
		err := s.PutConfig(ctx, testRun, []byte(`{"model":"cnn"}`))
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), configKey(testRun)) {
			t.Fatalf("different config: %v, want ErrConflict naming the key", err)
		}
		got, err := s.GetConfig(ctx, testRun)
		if err != nil || string(got) != string(cfg) {
			t.Fatalf("GetConfig = %q, %v", got, err)
		}
		// The conditional create itself refuses to overwrite.
		if err := s.put(ctx, configKey(testRun), []byte("x"), "", true); !errors.Is(err, ErrConflict) {
			t.Fatalf("conditional put over an existing object: %v, want ErrConflict", err)
		}
	})
}

func TestCorruptManifestFallsBack(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		commitSteps(t, ctx, s, testRun, 10, 20)
		if err := s.put(ctx, manifestKey(testRun), []byte(`{"key":`), "", false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Manifest(ctx, testRun); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Manifest: %v, want ErrCorrupt", err)
		}
		var warnings []string
		got, _, err := s.Latest(ctx, testRun, func(w string) { warnings = append(warnings, w) })
		if err != nil || got.Step != 20 || len(warnings) != 1 || !strings.Contains(warnings[0], manifestKey(testRun)) {
			t.Fatalf("Latest with a corrupt manifest: %v %v, warnings %q", got, err, warnings)
		}
	})
}

// A run whose manifest is gone while its checkpoint objects are not
// (deleted by hand or by a lifecycle rule) resumes from the newest valid
// object, with a warning, rather than from step 0.
func TestMissingManifestFallsBack(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		commitSteps(t, ctx, s, testRun, 10, 20)
		if err := s.remove(ctx, manifestKey(testRun)); err != nil {
			t.Fatal(err)
		}
		var warnings []string
		got, m, err := s.Latest(ctx, testRun, func(w string) { warnings = append(warnings, w) })
		if err != nil {
			t.Fatalf("Latest without a manifest: %v", err)
		}
		if got.Step != 20 || m.Step != 20 || len(warnings) != 1 || !strings.Contains(warnings[0], manifestKey(testRun)+": not found") || !strings.Contains(warnings[0], "2 checkpoint objects") {
			t.Fatalf("Latest without a manifest: step %d (manifest %d), warnings %q; want step 20 and one warning", got.Step, m.Step, warnings)
		}
		if _, _, err := s.Latest(ctx, "nocheckpoints0run", nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Latest of a run with no objects: %v, want ErrNotFound", err)
		}
	})
}

// commitSteps commits a test checkpoint of run (one epoch of history) at
// each of steps, in order.
func commitSteps(t *testing.T, ctx context.Context, s *Store, run string, steps ...uint64) {
	t.Helper()
	for _, step := range steps {
		ck := testCheckpoint(step, 1)
		ck.Run = run
		if _, err := s.Commit(ctx, ck); err != nil {
			t.Fatal(err)
		}
	}
}

// A history.json repair says what differed: the number of entries, or the
// first epoch whose entry changed.
func TestHistoryDiffersSaysWhat(t *testing.T) {
	want := testCheckpoint(20, 2).History
	changed := append([]HistoryEntry(nil), want...)
	changed[1].TrainLoss++
	for _, tc := range []struct {
		have []HistoryEntry
		say  string
	}{
		{want[:1], "it has 1 entries, the checkpoint 2"},
		{changed, fmt.Sprintf("its entry for epoch %d differs", want[1].Epoch)},
		{want, "the same entries"},
	} {
		if got := historyDiffers(tc.have, want); !strings.Contains(got, tc.say) {
			t.Errorf("historyDiffers = %q, want it to say %q", got, tc.say)
		}
	}
}

// A newest checkpoint in another format version (written by a newer
// build) is not corrupt: Latest returns ErrVersion, naming the key, and
// does not fall back to an older checkpoint, which this build would then
// overwrite in its own format.
func TestACheckpointOfAnotherVersionIsNotFallenBackFrom(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		commitSteps(t, ctx, s, testRun, 10)
		newer := testCheckpoint(20, 1)
		data, err := newer.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		data[len(checkpointMagic)] = checkpointVersion + 1 // a later format, whole and with its own sha256
		if err := s.putSum(ctx, CheckpointKey(testRun, 20), data, sha256Hex(data), "application/octet-stream", false); err != nil {
			t.Fatal(err)
		}
		m := manifestFor(newer, CheckpointKey(testRun, 20), data, sha256Hex(data))
		if err := s.put(ctx, manifestKey(testRun), m.encode(), "application/json", false); err != nil {
			t.Fatal(err)
		}
		ck, _, err := s.Latest(ctx, testRun, func(w string) { t.Errorf("Latest warned %q", w) })
		if ck != nil {
			t.Fatalf("Latest fell back to step %d", ck.Step)
		}
		if !errors.Is(err, ErrVersion) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), CheckpointKey(testRun, 20)) {
			t.Fatalf("Latest with a newer-format checkpoint: %v, want ErrVersion naming its key", err)
		}
	})
}
