// Package handoff passes the gradients that in-process workers publish to
// the coordinator of the same process, so the coordinator need not read
// them back from the broker.
//
// The broker still stores every gradient: the grads stream stays the run's
// write-ahead log, and a restarted coordinator replays it. What changes is
// the live path. A worker puts each message it is about to publish into the
// Exchange, under its message id and its own id (a header of the message).
// The coordinator reads the stream with a consumer that delivers headers
// only, in stream order as before, and takes each message's bytes from the
// Exchange; a message the Exchange does not hold (a gradient of a worker in
// another process, a message it let go, every message of a replay after a
// restart) the coordinator fetches from the stream.
//
// The key names the bytes exactly: the message id names the run, step,
// shards and weights a gradient was computed on, and one worker computes
// the same bytes from them every time, so what the Exchange holds under a
// key is what the stream stored under it.
//
// The Exchange holds messages only of runs a coordinator reads (Attach): a
// standby waiting for a run's lease, a process whose coordinator stopped,
// or workers serving another run hold nothing. A reading coordinator takes
// each message as the stream delivers its header, milliseconds after the
// worker put it, and drops those of steps it committed without them; only
// a reader that lags (a replay, a stall) lets messages pile up, and past
// Capacity messages or CapacityBytes the oldest go (the coordinator then
// fetches them).
package handoff

import "sync"

// Key names one published message.
type Key struct {
	MsgID  string // its JetStream message id
	Worker string // the id of the worker that published it
}

// An Exchange holds at most Capacity messages of at most CapacityBytes in
// all.
const (
	Capacity      = 64
	CapacityBytes = 256 << 20
)

// Exchange holds messages published by workers until their coordinator
// takes them. Its methods may be called from any goroutine.
type Exchange struct {
	mu      sync.Mutex
	entries []entry        // in the order they were put
	bytes   int            // of the entries' data
	readers map[string]int // attached readers by run: a run's messages are held only while it has one
	puts    uint64
	taken   uint64
}

type entry struct {
	run  string
	step uint64
	key  Key
	data []byte
	done func()
}

// New returns an empty Exchange.
func New() *Exchange { return &Exchange{readers: map[string]int{}} }

// Attach tells the Exchange that a reader takes the messages of run from
// it, until the returned detach is called; detach lets go of every message
// of run held once no reader of it is attached.
func (x *Exchange) Attach(run string) (detach func()) {
	x.mu.Lock()
	x.readers[run]++
	x.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			x.mu.Lock()
			x.readers[run]--
			var gone []func()
			if x.readers[run] == 0 {
				delete(x.readers, run)
				gone = x.removeIf(func(e *entry) bool { return e.run == run })
			}
			x.mu.Unlock()
			call(gone)
		})
	}
}

// Put holds data, a message of the step named of run, under k, until it
// is taken or dropped. done, if not nil, is called once the Exchange no
// longer holds it (by whoever takes it, once done with data), and at once
// when no reader of run is attached, as nothing is held then. The sender
// must not change data until done is called. An entry already under k is
// replaced (and let go).
func (x *Exchange) Put(run string, step uint64, k Key, data []byte, done func()) {
	x.mu.Lock()
	if x.readers[run] == 0 {
		x.mu.Unlock()
		call([]func(){done})
		return
	}
	gone := x.removeIf(func(e *entry) bool { return e.key == k })
	for len(x.entries) > 0 && (len(x.entries) >= Capacity || x.bytes+len(data) > CapacityBytes) {
		gone = append(gone, x.removeAt(0).done)
	}
	x.entries = append(x.entries, entry{run: run, step: step, key: k, data: data, done: done})
	x.bytes += len(data)
	x.puts++
	x.mu.Unlock()
	call(gone)
}

// Take removes the message under k and returns it with the function to
// call once done with its bytes (never nil). ok is false if the Exchange
// holds nothing under k.
func (x *Exchange) Take(k Key) (data []byte, done func(), ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i := range x.entries {
		if x.entries[i].key != k {
			continue
		}
		e := x.removeAt(i)
		x.taken++
		if e.done == nil {
			e.done = func() {}
		}
		return e.data, e.done, true
	}
	return nil, nil, false
}

// Drop lets go of the message under k, if the Exchange holds one.
func (x *Exchange) Drop(k Key) {
	x.mu.Lock()
	gone := x.removeIf(func(e *entry) bool { return e.key == k })
	x.mu.Unlock()
	call(gone)
}

// DropBefore lets go of the messages of run's steps before step.
func (x *Exchange) DropBefore(run string, step uint64) {
	x.mu.Lock()
	gone := x.removeIf(func(e *entry) bool { return e.run == run && e.step < step })
	x.mu.Unlock()
	call(gone)
}

// Len is how many messages the Exchange holds.
func (x *Exchange) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.entries)
}

// Puts is how many messages the Exchange has held (taken in by Put).
func (x *Exchange) Puts() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.puts
}

// Taken is how many messages have been taken from the Exchange.
func (x *Exchange) Taken() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.taken
}

// removeAt removes and returns entry i. x.mu is held.
func (x *Exchange) removeAt(i int) entry {
	e := x.entries[i]
	copy(x.entries[i:], x.entries[i+1:])
	x.entries[len(x.entries)-1] = entry{}
	x.entries = x.entries[:len(x.entries)-1]
	x.bytes -= len(e.data)
	return e
}

// removeIf removes the entries f selects, keeping the others in order, and
// returns their done functions. x.mu is held.
func (x *Exchange) removeIf(f func(*entry) bool) []func() {
	var gone []func()
	kept := x.entries[:0]
	for i := range x.entries {
		e := &x.entries[i]
		if f(e) {
			gone = append(gone, e.done)
			x.bytes -= len(e.data)
			continue
		}
		kept = append(kept, *e)
	}
	clear(x.entries[len(kept):])
	x.entries = kept
	return gone
}

// call calls every non-nil function in fs, outside the Exchange's lock: a
// done function may put the next message.
func call(fs []func()) {
	for _, f := range fs {
		if f != nil {
			f()
		}
	}
}
