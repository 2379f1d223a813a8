package protocol

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

// DatasetKey is the RunsBucket key of a run's DatasetRef.
func DatasetKey(run string) string { return run + ".dataset" }
