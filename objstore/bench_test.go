package objstore

import (
	"testing"
)

// BenchmarkCommit commits a 400 KB checkpoint (100k float32 weights, 10
// epochs of history) to the embedded server: checkpoint, manifest,
// history.json, then pruning to Keep=3.
func BenchmarkCommit(b *testing.B) {
	s := openTest(b, embedded.URL())
	ctx := testCtx(b)
	ck := testCheckpoint(1, 10)
	ck.Weights = make([]float32, 100_000)
	data, _ := ck.MarshalBinary()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ck.Step = uint64(i + 1)
		if _, err := s.Commit(ctx, ck); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/commit")
}

// BenchmarkLatest reads back and verifies the same checkpoint.
func BenchmarkLatest(b *testing.B) {
	s := openTest(b, embedded.URL())
	ctx := testCtx(b)
	ck := testCheckpoint(1, 10)
	ck.Weights = make([]float32, 100_000)
	if _, err := s.Commit(ctx, ck); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Latest(ctx, testRun, nil); err != nil {
			b.Fatal(err)
		}
	}
}
