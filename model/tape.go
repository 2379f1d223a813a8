package model

import (
	"reflect"
	"unsafe"

	G "gorgonia.org/gorgonia"
)

// gorgonia's tape machine runs a program through RunAll, which locks the
// calling goroutine to its OS thread, starts a goroutine that executes the
// tape, and waits for it. On CPU the lock and the goroutine serve nothing
// (they are for CUDA and batched cgo calls), and they cost: the locked
// thread sleeps while the tape runs on another, each run is two thread
// hand-offs, and the new goroutine queues for a core behind whatever else
// is runnable — a worker's broker and coordinator, 20-170 µs a run in a
// scheduler trace, four runs a step. runTape executes the tape itself, on
// the calling goroutine: the same instructions, in the same order.
//
// tapeRunAll is the loop of gorgonia's (*tapeMachine).runall: it executes
// every instruction from the program counter on, sends the first error on
// errc or, at the end, a value on done.
//
//go:linkname tapeRunAll gorgonia.org/gorgonia.(*tapeMachine).runall
func tapeRunAll(m unsafe.Pointer, errc chan error, done chan struct{})

// tapeRunner executes one tape machine on the calling goroutine.
type tapeRunner struct {
	vm   G.VM
	m    unsafe.Pointer // vm's *tapeMachine; nil to go through RunAll
	errc chan error     // buffered: runall's sends never block
	done chan struct{}
}

// newTapeRunner prepares to run vm in place when it is the tape machine
// this package knows (a *gorgonia.tapeMachine with no deferred closures to
// run after the tape, which RunAll would also do), and through RunAll
// otherwise.
func newTapeRunner(vm G.VM) *tapeRunner {
	r := &tapeRunner{vm: vm, errc: make(chan error, 1), done: make(chan struct{}, 1)}
	v := reflect.ValueOf(vm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type().String() != "*gorgonia.tapeMachine" {
		return r
	}
	q := v.Elem().FieldByName("closureQueue")
	if !q.IsValid() || q.Kind() != reflect.Slice || q.Len() != 0 {
		return r
	}
	r.m = v.UnsafePointer()
	return r
}

// run executes the tape once from its program counter.
func (r *tapeRunner) run() error {
	if r.m == nil {
		return r.vm.RunAll()
	}
	tapeRunAll(r.m, r.errc, r.done)
	select {
	case err := <-r.errc:
		return err
	default:
		<-r.done
		return nil
	}
}
