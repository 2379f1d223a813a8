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
// Exchange; a message the Exchange does not hold (another process's worker,
// a replay, a publish it lost track of) it fetches from the stream.
//
// The key names the bytes exactly: the message id names the run, step,
// shards and weights a gradient was computed on, and one worker computes
// the same bytes from them every time, so what the Exchange holds under a
// key is what the stream stored under it.
//
// Entries are few and short-lived. The Exchange takes them only while a
// coordinator reads it (Attach): a standby waiting for the run's lease, or
// a process whose coordinator stopped, holds no gradient its workers
// publish. The coordinator takes them as the stream delivers their headers
// and drops those of steps it committed without them; the Exchange holds
// at most Capacity and lets the oldest go past that.
package handoff

import "sync"

// Key names one published message.
type Key struct {
	MsgID  string // its JetStream message id
	Worker string // the id of the worker that published it
}

// Capacity is how many messages an Exchange holds at most: more than a
// run has out ahead of its coordinator (tasks go out a few steps ahead).
const Capacity = 64

// Exchange holds messages published by workers until their coordinator
// takes them. Its methods may be called from any goroutine.
type Exchange struct {
	mu      sync.Mutex
	entries []entry // in the order they were put
	readers int     // attached readers: messages are put only while there is one
	taken   uint64
}

type entry struct {
	key  Key
	step uint64
	data []byte
	done func()
}

// New returns an empty Exchange.
func New() *Exchange { return &Exchange{} }

// Attach tells the Exchange that a reader takes messages from it, until
// the returned detach is called; detach lets go of every message held
// once no reader is attached.
func (x *Exchange) Attach() (detach func()) {
	x.mu.Lock()
	x.readers++
	x.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			var gone []func()
			x.mu.Lock()
			x.readers--
			if x.readers == 0 {
				for _, e := range x.entries {
					gone = append(gone, e.done)
				}
				clear(x.entries)
				x.entries = x.entries[:0]
			}
			x.mu.Unlock()
			call(gone)
		})
	}
}

// Put holds data, a message of the step named, under k, until it is taken
// or dropped; done, if not nil, is called once the Exchange no longer
// holds it (by whoever takes it, once it is done with data), and at once
// when no reader is attached, as nothing is held then. The sender must
// not change data until done is called. An entry already under k is
// replaced (and let go).
func (x *Exchange) Put(k Key, step uint64, data []byte, done func()) {
	var gone []func()
	x.mu.Lock()
	if x.readers == 0 {
		x.mu.Unlock()
		call([]func(){done})
		return
	}
	if i := x.find(k); i >= 0 {
		gone = append(gone, x.entries[i].done)
		x.remove(i)
	}
	for len(x.entries) >= Capacity {
		gone = append(gone, x.entries[0].done)
		x.remove(0)
	}
	x.entries = append(x.entries, entry{key: k, step: step, data: data, done: done})
	x.mu.Unlock()
	call(gone)
}

// Take removes the message under k and returns it with the function to
// call once done with its bytes (never nil). ok is false if the Exchange
// holds nothing under k.
func (x *Exchange) Take(k Key) (data []byte, done func(), ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i := x.find(k)
	if i < 0 {
		return nil, nil, false
	}
	e := x.entries[i]
	x.remove(i)
	x.taken++
	if e.done == nil {
		e.done = func() {}
	}
	return e.data, e.done, true
}

// Drop lets go of the message under k, if the Exchange holds one.
func (x *Exchange) Drop(k Key) {
	x.mu.Lock()
	var gone []func()
	if i := x.find(k); i >= 0 {
		gone = append(gone, x.entries[i].done)
		x.remove(i)
	}
	x.mu.Unlock()
	call(gone)
}

// DropBefore lets go of the messages of every step before step.
func (x *Exchange) DropBefore(step uint64) {
	var gone []func()
	x.mu.Lock()
	kept := x.entries[:0]
	for _, e := range x.entries {
		if e.step < step {
			gone = append(gone, e.done)
			continue
		}
		kept = append(kept, e)
	}
	clear(x.entries[len(kept):])
	x.entries = kept
	x.mu.Unlock()
	call(gone)
}

// Taken is how many messages have been taken from the Exchange.
func (x *Exchange) Taken() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.taken
}

// Len is how many messages the Exchange holds.
func (x *Exchange) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.entries)
}

func (x *Exchange) find(k Key) int {
	for i := range x.entries {
		if x.entries[i].key == k {
			return i
		}
	}
	return -1
}

func (x *Exchange) remove(i int) {
	copy(x.entries[i:], x.entries[i+1:])
	x.entries[len(x.entries)-1] = entry{}
	x.entries = x.entries[:len(x.entries)-1]
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
