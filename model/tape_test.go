package model

import (
	"runtime/metrics"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestTapeRunsInPlace checks that the networks' programs, training and
// evaluating, run on the calling goroutine (not through RunAll, which starts a
// goroutine for every run), and that a run
// so gives what RunAll gives, bit for bit.
func TestTapeRunsInPlace(t *testing.T) {
	for _, spec := range []Spec{{Kind: KindMLP}, {Kind: KindCNN, Hidden: []int{8}}} {
		input := [3]int{1, 28, 28}
		net, err := New(spec, input, 10)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(net.Close)
		params := net.Init(3)
		x, y := randomBatch(4, 8, input, 10)
		for _, train := range []bool{true, false} {
			p, err := net.program(8, train)
			if err != nil {
				t.Fatal(err)
			}
			if p.tape.m == nil {
				t.Fatalf("%s train=%v: the tape goes through RunAll", spec.Kind, train)
			}
		}
		got := make([]float32, len(params))
		if _, err := net.Gradient(params, x, y, got); err != nil {
			t.Fatal(err)
		}
		// A run in place starts no goroutine; RunAll starts one a run.
		p, _ := net.program(8, true)
		inPlace := goroutinesStarted(t, 5, func() {
			if err := p.tape.run(); err != nil {
				t.Fatal(err)
			}
		})
		viaRunAll := goroutinesStarted(t, 5, func() {
			*p.tape.pc = 0
			if err := p.tape.vm.RunAll(); err != nil {
				t.Fatal(err)
			}
		})
		if inPlace != 0 || viaRunAll < 5 {
			t.Fatalf("%s: five runs in place started %d goroutines, five through RunAll %d: not in place", spec.Kind, inPlace, viaRunAll)
		}
		p.tape.m = nil // reset and RunAll from here on
		want := make([]float32, len(params))
		if _, err := net.Gradient(params, x, y, want); err != nil {
			t.Fatal(err)
		}
		if Digest(got) != Digest(want) {
			t.Fatalf("%s: the gradient run in place differs from RunAll's", spec.Kind)
		}
	}
}

// goroutinesStarted runs f n times and returns how many goroutines the
// process started meanwhile (the test runs alone: it is not parallel).
func goroutinesStarted(t *testing.T, n int, f func()) uint64 {
	t.Helper()
	sample := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(sample)
	before := sample[0].Value.Uint64()
	for range n {
		f()
	}
	metrics.Read(sample)
	return sample[0].Value.Uint64() - before
}

// TestTapeErrorsComeBack checks that an instruction's error reaches the
// caller of a run in place, and that the next run starts over from the
// first instruction (the failed one stopped past it).
func TestTapeErrorsComeBack(t *testing.T) {
	g := G.NewGraph()
	a := G.NewMatrix(g, G.Float32, G.WithShape(2, 3), G.WithName("a"))
	b := G.NewMatrix(g, G.Float32, G.WithShape(3, 2), G.WithName("b"))
	c := G.Must(G.Mul(a, b))
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	r := newTapeRunner(vm)
	if r.m == nil {
		t.Fatal("a plain tape machine goes through RunAll")
	}
	// a is bound and b is not: the tape fails at an instruction past the
	// first, where a run that did not rewind would start again.
	if err := G.Let(a, tensor.New(tensor.WithShape(2, 3), tensor.Of(tensor.Float32))); err != nil {
		t.Fatal(err)
	}
	if err := r.run(); err == nil {
		t.Fatal("a run without b succeeded")
	}
	if err := G.Let(a, tensorOf(2, 3)); err != nil {
		t.Fatal(err)
	}
	if err := G.Let(b, tensorOf(3, 2)); err != nil {
		t.Fatal(err)
	}
	if err := r.run(); err != nil {
		t.Fatalf("a run after a failed one: %v", err)
	}
	if got := c.Value().Data().([]float32); got[0] != 10 { // [0 1 2]·[0 2 4]
		t.Fatalf("c[0,0] = %v, want 10", got[0])
	}
}

// tensorOf is a rows×cols matrix holding 0, 1, 2, ... in row order.
func tensorOf(rows, cols int) *tensor.Dense {
	v := make([]float32, rows*cols)
	for i := range v {
		v[i] = float32(i)
	}
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(v))
}
