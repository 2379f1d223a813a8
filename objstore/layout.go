package objstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Object keys of the run layout (see the package documentation).
const (
	runsPrefix     = "runs/"
	configName     = "config.json"
	manifestName   = "checkpoint.json"
	historyName    = "history.json"
	bestName       = "best.safetensors"
	checkpointsDir = "checkpoints/"
	stepDigits     = 12
	// MaxStep is the largest step a checkpoint key can hold (12 decimal digits).
	MaxStep   = 999_999_999_999
	maxRunLen = 128
)

// ValidRun reports whether run can name a run: 1 to 128 characters of
// [0-9a-zA-Z_-]. Signatures are lowercase hex, which always qualifies.
func ValidRun(run string) error {
	if run == "" || len(run) > maxRunLen {
		return fmt.Errorf("%w: run %q: want 1 to %d characters", ErrInvalid, run, maxRunLen)
	}
	for i := 0; i < len(run); i++ {
		c := run[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return fmt.Errorf("%w: run %q: character %q is not allowed", ErrInvalid, run, c)
		}
	}
	return nil
}

func runPrefix(run string) string         { return runsPrefix + run + "/" }
func configKey(run string) string         { return runPrefix(run) + configName }
func manifestKey(run string) string       { return runPrefix(run) + manifestName }
func historyKey(run string) string        { return runPrefix(run) + historyName }
func bestKey(run string) string           { return runPrefix(run) + bestName }
func checkpointsPrefix(run string) string { return runPrefix(run) + checkpointsDir }

// CheckpointKey is the object key of run's checkpoint at step:
// runs/<run>/checkpoints/<step zero-padded to 12 digits>, so that listing
// order is step order.
func CheckpointKey(run string, step uint64) string {
	return fmt.Sprintf("%s%0*d", checkpointsPrefix(run), stepDigits, step)
}

// parseCheckpointKey returns the step of a key made by CheckpointKey.
func parseCheckpointKey(run, key string) (uint64, bool) {
	name, ok := strings.CutPrefix(key, checkpointsPrefix(run))
	if !ok || len(name) != stepDigits {
		return 0, false
	}
	step, err := strconv.ParseUint(name, 10, 64)
	return step, err == nil
}
