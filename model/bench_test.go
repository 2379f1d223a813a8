package model

import "testing"

// benchGradient measures one forward+backward pass (Gradient) of spec at batch size.
func benchGradient(b *testing.B, spec Spec, batch int) {
	input := [3]int{1, 28, 28}
	net, err := New(spec, input, 10)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	params := net.Init(1)
	x, y := randomBatch(1, batch, input, 10)
	grad := make([]float32, len(params))
	if _, err := net.Gradient(params, x, y, grad); err != nil { // compile outside the timer
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := net.Gradient(params, x, y, grad); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkGradientMLP64(b *testing.B)  { benchGradient(b, Spec{Kind: KindMLP}, 64) }
func BenchmarkGradientMLP256(b *testing.B) { benchGradient(b, Spec{Kind: KindMLP}, 256) }
func BenchmarkGradientCNN64(b *testing.B)  { benchGradient(b, Spec{Kind: KindCNN}, 64) }

func BenchmarkOptimizerAdam(b *testing.B) {
	net, _ := New(Spec{Kind: KindMLP}, [3]int{1, 28, 28}, 10)
	w := net.Init(1)
	g := randVec(2, len(w))
	o, _ := NewOptimizer(DefaultOptimizer(OptAdam), len(w))
	for i := 0; b.Loop(); i++ {
		o.Apply(w, g, int64(i))
	}
}

// BenchmarkShardSumStep is the sum's share of a step of the default run:
// four shard gradients of the default MLP folded in shard order and their
// mean taken (with SGD, whose update is small next to it).
func BenchmarkShardSumStep(b *testing.B) {
	net, _ := New(Spec{Kind: KindMLP, Hidden: []int{256}}, [3]int{1, 28, 28}, 10)
	w := net.Init(1)
	grads := [4][]float32{randVec(2, len(w)), randVec(3, len(w)), randVec(4, len(w)), randVec(5, len(w))}
	o, _ := NewOptimizer(DefaultOptimizer(OptSGD), len(w))
	s := NewShardSum(4, len(w))
	b.SetBytes(int64(4 * 4 * len(w)))
	for i := 0; b.Loop(); i++ {
		for k, g := range grads {
			s.Add(k, g)
		}
		s.Apply(o, w, 128, uint64(i))
	}
}

// BenchmarkShardSumWhole measures the coordinator's share of a step of the
// default MLP whose gradient came as one sum of every shard (a lone
// worker's): taken into the ShardSum with a copy (AddShards), or read
// where it is (Borrow), and then Adam's update with its mean.
func BenchmarkShardSumWhole(b *testing.B) {
	net, _ := New(Spec{Kind: KindMLP, Hidden: []int{256}}, [3]int{1, 28, 28}, 10)
	w := net.Init(1)
	sum := randVec(2, len(w))
	for _, bc := range []struct {
		name string
		take func(s *ShardSum)
	}{
		{"copied", func(s *ShardSum) { s.AddShards(0, 4, Parts{sum}) }},
		{"borrowed", func(s *ShardSum) { s.Borrow(sum) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			o, _ := NewOptimizer(DefaultOptimizer(OptAdam), len(w))
			s := NewShardSum(4, len(w))
			b.SetBytes(int64(4 * len(w)))
			for i := 0; b.Loop(); i++ {
				bc.take(s)
				s.Apply(o, w, 128, uint64(i))
			}
		})
	}
}

// BenchmarkGatherShard measures gathering a 32-sample shard of 28×28 images
// at scattered indices, from a split kept as float32 values and from one
// kept as grey levels (Fashion-MNIST's training images).
func BenchmarkGatherShard(b *testing.B) {
	const n, dim, shard = 60000, 28 * 28, 32
	levels := make([]uint8, n*dim)
	for i := range levels {
		levels[i] = uint8(i * 7)
	}
	values := make([]float32, len(levels))
	levelsToValues(values, levels)
	y := make([]uint8, n)
	idx := Permutation(1, 0, n)[:shard]
	x, ys := make([]float32, shard*dim), make([]uint8, shard)
	for _, split := range []struct {
		name string
		s    Split
	}{{"values", Split{X: values, Y: y, N: n}}, {"levels", Split{Levels: levels, Y: y, N: n}}} {
		b.Run(split.name, func(b *testing.B) {
			for b.Loop() {
				split.s.Gather(idx, x, ys)
			}
		})
	}
}

// BenchmarkGradientShard is a shard of the default run: 32 samples through
// MLP 784-256-10.
func BenchmarkGradientShard(b *testing.B) {
	benchGradient(b, Spec{Kind: KindMLP, Hidden: []int{256}}, 32)
}

// BenchmarkShardGradientsStep is a step's gradients of the default MLP,
// four 32-sample shards each folded into the step's sum: copied into one
// buffer first (Gradient, then Add), or folded from the network's own
// buffers (GradientParts, then AddParts).
func BenchmarkShardGradientsStep(b *testing.B) {
	input := [3]int{1, 28, 28}
	net, err := New(Spec{Kind: KindMLP, Hidden: []int{256}}, input, 10)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	params := net.Params()
	copy(params, net.Init(1))
	x, y := randomBatch(1, 128, input, 10)
	grad := make([]float32, len(params))
	sum := NewShardSum(4, len(params))
	ss := input[1] * input[2]
	shard := func(k int) ([]float32, []uint8) { return x[k*32*ss : (k+1)*32*ss], y[k*32 : (k+1)*32] }
	b.Run("copied", func(b *testing.B) {
		for b.Loop() {
			for k := range 4 {
				xs, ys := shard(k)
				if _, err := net.Gradient(params, xs, ys, grad); err != nil {
					b.Fatal(err)
				}
				sum.Add(k, grad)
			}
			sum.Reset()
		}
	})
	b.Run("parts", func(b *testing.B) {
		for b.Loop() {
			for k := range 4 {
				xs, ys := shard(k)
				g, _, err := net.GradientParts(params, xs, ys)
				if err != nil {
					b.Fatal(err)
				}
				sum.AddParts(k, g)
			}
			sum.Reset()
		}
	})
}
