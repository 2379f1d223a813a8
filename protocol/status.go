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
	UnixMilli   int64  `json:"unix_ms"` // when it was written
}
