package model

import (
	"reflect"
	"unsafe"

	G "gorgonia.org/gorgonia"
)

// A program's tape machine runs once per Gradient or Evaluate call, and
// two of gorgonia's ways of doing that cost more than the math of a small
// network:
//
//   - Between runs, Reset empties every register, so that each run would
//     allocate all intermediate tensors again (about 0.5 MB per MLP step at
//     batch 64). A tape only needs its program counter moved back to the
//     first instruction: kept registers are reused by the tape's alloc
//     instructions (they skip a register whose value already has the right
//     shape), and every op of our graphs overwrites its output, so a
//     rewound run computes exactly what a reset run does
//     (TestGradientRepeatable checks this bit for bit).
//   - RunAll locks the calling goroutine to its OS thread, starts a
//     goroutine that executes the tape, and waits for it. On CPU the lock
//     and the goroutine serve nothing (they are for CUDA and batched cgo
//     calls), and they cost: the locked thread sleeps while the tape runs
//     on another, each run is two thread hand-offs, and the new goroutine
//     queues for a core behind whatever else is runnable — a worker's
//     broker and coordinator, 20-170 µs a run in a scheduler trace, four
//     runs a step. The tape runs instead on the calling goroutine: the
//     same instructions, in the same order.
//
// Both reach into the *gorgonia.tapeMachine (its pc field, its runall
// method), found once per program; a machine of any other type is reset
// and run through RunAll.

// tapeRunAll is the loop of gorgonia's (*tapeMachine).runall: it executes
// every instruction from the program counter on, sends the first error on
// errc or, at the end, a value on done.
//
//go:linkname tapeRunAll gorgonia.org/gorgonia.(*tapeMachine).runall
func tapeRunAll(m unsafe.Pointer, errc chan error, done chan struct{})

// tapeRunner executes one tape machine on the calling goroutine.
type tapeRunner struct {
	vm   G.VM
	m    unsafe.Pointer // vm's *tapeMachine; nil to reset and go through RunAll
	pc   *int           // its program counter
	errc chan error     // buffered: runall's sends never block
	done chan struct{}
}

// newTapeRunner prepares to rewind and run vm in place when it is the tape
// machine this package knows. Our graphs are compiled without
// BindDualValues, the only way gorgonia queues closures for RunAll to run
// after the tape.
func newTapeRunner(vm G.VM) *tapeRunner {
	r := &tapeRunner{vm: vm, errc: make(chan error, 1), done: make(chan struct{}, 1)}
	v := reflect.ValueOf(vm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().String() != "*gorgonia.tapeMachine" {
		return r
	}
	pc := v.Elem().FieldByName("pc")
	if !pc.IsValid() || pc.Kind() != reflect.Int {
		return r
	}
	r.m, r.pc = v.UnsafePointer(), (*int)(unsafe.Pointer(pc.UnsafeAddr()))
	return r
}

// run executes the tape once, from its first instruction.
func (r *tapeRunner) run() error {
	if r.m == nil {
		r.vm.Reset()
		return r.vm.RunAll()
	}
	*r.pc = 0 // a new machine's registers are empty; later runs overwrite them
	tapeRunAll(r.m, r.errc, r.done)
	select {
	case err := <-r.errc:
		return err
	case <-r.done:
		return nil
	}
}
