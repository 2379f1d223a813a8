package protocol

import (
	"fmt"
	"strings"
)

// StatusBucket is the KV bucket where each run's leading coordinator
// reports its progress every few seconds, keyed by run signature.
const StatusBucket = "jt-status"

// Status is the value of a StatusBucket entry (JSON).
type Status struct {
	Run         string `json:"run"`
	Coordinator string `json:"coordinator"`
	Step        uint64 `json:"step"`
	Epoch       int    `json:"epoch"`
	Workers     int    `json:"workers"`
	Replaying   bool   `json:"replaying"`
	Recomputing bool   `json:"recomputing,omitempty"` // the steps to the newest checkpoint, when an older one was resumed from
	UnixMilli   int64  `json:"unix_ms"`               // when it was written
}

// DatasetRef tells workers where to fetch a run's dataset files when they
// do not have them: objects datasets/<Name>/<Digest>/<file> in the run's
// bucket. It is stored in RunsBucket under DatasetKey(run), as JSON.
type DatasetRef struct {
	Name   string   `json:"name"`
	Digest string   `json:"digest"`
	Files  []string `json:"files"`
}

// Validate checks r, read from the runs bucket, before its fields name a
// directory and files on a worker's disk: a digest of 64 lowercase hex
// digits (a sha256) and plain file names, so that no entry reaches outside
// the worker's dataset cache.
func (r DatasetRef) Validate() error {
	if len(r.Digest) != 64 || strings.Trim(r.Digest, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: dataset digest %q is not a hex sha256", ErrMalformed, r.Digest)
	}
	if len(r.Files) == 0 {
		return fmt.Errorf("%w: dataset %s names no files", ErrMalformed, r.Digest)
	}
	for _, f := range r.Files {
		if f == "" || f == "." || f == ".." || strings.ContainsAny(f, `/\`) {
			return fmt.Errorf("%w: dataset file %q is not a plain name", ErrMalformed, f)
		}
	}
	return nil
}

// DatasetKey is the RunsBucket key of a run's DatasetRef.
func DatasetKey(run string) string { return run + ".dataset" }
