// Package model is the math of jettrain: gorgonia networks over a flat float32 parameter
// vector, the optimizers that update it, the datasets they train on, and the data order.
// Every function is deterministic: the same inputs give the same bytes in any Network, on
// any goroutine, in any process (of the same build), so a gradient computed by any worker
// is interchangeable with any other's.
//
// # Parameters
//
// A network's weights are one []float32 whose Layout names each tensor, its shape and its
// offset ("dense0.weight" [784 128], "dense0.bias" [128], ...). Init(seed) draws them from
// math/rand/v2 PCG sources. Digest is their sha256, the name of weights where they are kept
// or reported (checkpoints, inspect, the end of a run); Check, a 64-bit XXH3, names a weights
// version while a run trains and is compared every step.
//
// # Gradients
//
//	net, _ := model.New(model.Spec{Kind: "mlp"}, ds.Shape, ds.Classes)
//	w := net.Init(seed)
//	grad := make([]float32, net.Layout().Size())
//	st, _ := net.Gradient(w, x, y, grad) // grad of the SUM of the batch's losses
//
// Network compiles one gorgonia graph per batch size (a tape machine over nodes whose values
// are views of reusable buffers) and keeps it; later calls only copy the weights and the
// batch in, run the tape and copy the gradient out. The loss is a fused softmax
// cross-entropy op (xent.go) with a closed-form backward pass. Gradients are overwritten,
// never accumulated (gorgonia's dual values would accumulate across runs; they are not used).
// A Network is for one goroutine; make one per worker goroutine.
//
// The MLP is 784 → 128 (ReLU) → 10 by default (Spec.Hidden sets the hidden sizes). The CNN is
// conv 3x3 pad 1 with 16 filters (ReLU) → max-pool 2x2 → 64 (ReLU) → 10.
//
// # Data-parallel steps
//
// An epoch's order is Permutation(seed, epoch, n); step s of the epoch takes
// BatchIndices(perm, s, batch) and splits them into shards with ShardRange. The mean gradient
// of the step is the float32 sum of the shards' gradients added in shard order, times
// 1/float32(batch); Optimizer.Apply(w, mean, step) then updates the weights. Because every
// shard's gradient is bit-identical wherever it is computed, the result does not depend on
// which worker computed which shard. TrainSingleProcess does exactly this in one goroutine.
//
// # Optimizers
//
// SGD with momentum and Adam (decoupled weight decay), with constant, cosine or step
// learning-rate schedules and linear warm-up. Apply is a pure function of (weights, state,
// mean gradient, step); MarshalState is byte-for-byte stable, so a checkpointed run resumes
// bit-identically.
//
// # Datasets
//
// LoadDataset("fashion-mnist", dir) reads the four IDX files (gzipped or not) that Debian's
// dataset-fashion-mnist installs in DefaultFashionMNISTDir; Synthetic is a tiny learnable
// dataset for tests. Values are scaled to [0,1].
//
// # Determinism
//
// No map iteration, wall clock or global random source reaches the math. Float products
// whose rounding matters are converted explicitly so the compiler cannot fuse them into FMA
// instructions, and the loss uses a portable exp (math.Exp has an FMA path on some CPUs).
// BLAS is gonum's pure-Go implementation, whose kernels do not depend on the CPU model,
// except for the two products of a dense layer (gemm.go), computed with AVX2 where the CPU
// has it in gonum's operations and order. Adam and the shard sum also run eight values at a
// time with AVX2, with the IEEE operations of their element-wise code in its order. So a
// machine without AVX2 computes the same bytes (the coordinator's
// TestTrainingGivesTheRecordedWeights runs both; TestSgemmIsGonums compares the products
// bit for bit, NaNs included).
// Bit-identity is promised between processes running the same GOARCH.
//
// # Speed
//
// Forward+backward (Gradient) per batch, go test -bench Gradient on the 2-core test machine
// (shared with other jobs, so ranges are what repeated runs gave):
//
//	                        first version (stock ops)   gonum BLAS, RunAll     now
//	MLP 784-128-10 @64      6.0–7.3 ms, 805 KB/op       3.4–4.0 ms, 9.6 KB/op  0.62–0.67 ms, 3.8 KB/op
//	MLP 784-128-10 @256     19–36 ms, 1.9 MB/op         13.9–14.6 ms          2.7–2.8 ms
//	CNN @64                 70–88 ms, 36 MB/op          14.5–24 ms            9.5–9.9 ms
//	reference, idle machine: PyTorch MLP@64 0.53 ms
//
// What changed, first: a fused softmax cross-entropy op; fused bias+ReLU ops instead of
// BroadcastAdd (which materializes the bias with a Repeat op) and Rectify (a comparison and a
// product); compiling only the subgraph the outputs need (the stock graph also computed the
// gradient with respect to the input batch, a full 64x128x784 product); reusing the tape
// machine's registers between runs (tape.go) instead of reallocating every intermediate
// tensor; for the CNN, one conv+bias+ReLU+pool op computing the convolution as a single
// channel-major product over the batch (gorgonia's Conv2d transposes NHWC↔NCHW, which cost
// more than the product) and keeping the arg-maxes for the backward pass.
//
// Then the products (gemm.go): with gonum's, 76% of an MLP's time was its Sgemm (x·W1 30%,
// x^T·dZ 43%), one SSE axpy per row of x and column of W, across goroutines. The kernels
// here keep 32 elements of two rows of the product in AVX2 registers for the whole sum
// (each row of W loaded once for both), on one goroutine: 4-5x (x·W1) and 9x (x^T·dZ)
// gonum's speed, on one core instead of two (go test -bench Sgemm); with beta 0, as
// gorgonia asks, they start C's rows from zero instead of clearing C first. A·Bᵀ (dot products,
// whose order gonum's assembly sets by the alignment of each row of B) runs gonum's
// blocks on one goroutine too, where gonum would split it, and each dot product in
// gonum's order eight rows of A at a time (dots8): 4x gonum's speed on the MLP's
// backward product through its output layer; in alternating runs, CNN@64 went from
// 16.4-17.3 ms to 12.7-15.0 and MLP 784-256-10@64 from 1.24-1.36 ms to 1.20-1.25.
//
// Last, the tape runs on the calling goroutine (tape.go): gorgonia's RunAll locks the
// caller to its thread and runs the tape on a new goroutine, two thread hand-offs and a
// wait for a core per run, which cost 20-25% of an MLP gradient. And a caller that keeps
// its weights in the network's own buffer (Network.Params) spares copying them in on every
// call.
//
// # Errors
//
// Errors wrap the sentinels in errors.go (ErrSpec, ErrShape, ErrDataset, ...): match with
// errors.Is.
package model
