//go:build !linux

package cpusched

// Batch reports ErrUnsupported: only Linux has SCHED_BATCH.
func Batch() error { return ErrUnsupported }
