package objstore

import (
	"testing"
)

// BenchmarkCommit commits checkpoints to the embedded server: checkpoint,
// manifest, history.json, then pruning to Keep=3. "weights=100k" has 100k
// float32 weights and no optimizer state (400 KB); "default-run" is the
// default MLP 784-256-10 with Adam's two moments (2.4 MB). Besides the
// client's time it reports the server's CPU per commit (the embedded server
// is a child process), where most of a commit's cost lands.
func BenchmarkCommit(b *testing.B) {
	for _, c := range []struct {
		name    string
		weights int
		moments int
	}{{"weights=100k", 100_000, 0}, {"default-run", 203_530, 2}} {
		b.Run(c.name, func(b *testing.B) {
			s := openTest(b, embedded.URL())
			ctx := testCtx(b)
			ck := testCheckpoint(1, 10)
			ck.Weights = make([]float32, c.weights)
			ck.OptState = make([]byte, 4*c.moments*c.weights)
			data, _ := ck.MarshalBinary()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			cpu0, cpuOK := embedded.CPU()
			for i := 0; b.Loop(); i++ {
				ck.Step = uint64(i + 1)
				if _, err := s.Commit(ctx, ck); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/commit")
			if cpu1, ok := embedded.CPU(); ok && cpuOK {
				b.ReportMetric((cpu1-cpu0).Seconds()*1e3/float64(b.N), "server-cpu-ms/commit")
			}
		})
	}
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
