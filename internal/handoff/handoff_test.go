package handoff

import (
	"fmt"
	"testing"
)

const run = "7c68a83c0dcdfe4f"

// attached is a new Exchange with a reader of run attached for the test's
// time.
func attached(t *testing.T) *Exchange {
	x := New()
	t.Cleanup(x.Attach(run))
	return x
}

// counter counts the calls of the done functions it makes, by name.
type counter map[string]int

func (c counter) done(name string) func() { return func() { c[name]++ } }

func key(i int) Key { return Key{MsgID: fmt.Sprint(i), Worker: "w"} }

func TestTakeReturnsWhatWasPutUnderTheSameKey(t *testing.T) {
	x := attached(t)
	c := counter{}
	a := Key{MsgID: "run/3/0+4/ab", Worker: "w1"}
	x.Put(run, 3, a, []byte("gradient"), c.done("a"))
	if _, _, ok := x.Take(Key{MsgID: a.MsgID, Worker: "w2"}); ok {
		t.Fatal("took another worker's message under the same message id")
	}
	data, done, ok := x.Take(a)
	if !ok || string(data) != "gradient" {
		t.Fatalf("Take = %q, %v; want what was put", data, ok)
	}
	if c["a"] != 0 {
		t.Fatal("the message was let go before its taker was done with it")
	}
	done()
	if c["a"] != 1 || x.Len() != 0 || x.Taken() != 1 || x.Puts() != 1 {
		t.Fatalf("after the taker is done: done called %d times, %d held, %d taken, %d put; want 1, 0, 1, 1", c["a"], x.Len(), x.Taken(), x.Puts())
	}
	if _, _, ok := x.Take(a); ok {
		t.Fatal("a message was taken twice")
	}
}

func TestADoneFunctionIsNeverNil(t *testing.T) {
	x := attached(t)
	x.Put(run, 1, key(1), nil, nil)
	_, done, ok := x.Take(key(1))
	if !ok || done == nil {
		t.Fatalf("Take = %v, done nil %v", ok, done == nil)
	}
	done()
}

func TestEveryMessageLetGoIsDoneOnce(t *testing.T) {
	x := attached(t)
	c := counter{}
	x.Put(run, 1, key(1), nil, c.done("1"))
	x.Put(run, 1, key(1), nil, c.done("1 again")) // replaces the first
	x.Put(run, 2, key(2), nil, c.done("2"))
	x.Put(run, 3, key(3), nil, c.done("3"))
	x.Put(run, 4, key(4), nil, c.done("4"))
	x.Drop(key(4))
	x.Drop(key(4))             // no longer held: nothing happens
	x.DropBefore("another", 9) // another run's steps: nothing held
	x.DropBefore(run, 3)
	want := counter{"1": 1, "1 again": 1, "2": 1, "4": 1}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("done calls %v, want %v", c, want)
	}
	if x.Len() != 1 {
		t.Fatalf("%d held, want step 3's", x.Len())
	}
	if _, _, ok := x.Take(key(3)); !ok {
		t.Fatal("DropBefore(3) let step 3's message go")
	}
}

func TestTheOldestGoPastCapacity(t *testing.T) {
	x := attached(t)
	c := counter{}
	for i := range Capacity + 2 {
		x.Put(run, uint64(i), key(i), nil, c.done(fmt.Sprint(i)))
	}
	if x.Len() != Capacity {
		t.Fatalf("%d held, want %d", x.Len(), Capacity)
	}
	if c["0"] != 1 || c["1"] != 1 || len(c) != 2 {
		t.Fatalf("done calls %v, want the two oldest's", c)
	}
	for _, i := range []int{0, 1} {
		if _, _, ok := x.Take(key(i)); ok {
			t.Fatalf("message %d is still held past capacity", i)
		}
	}
	if _, _, ok := x.Take(key(Capacity + 1)); !ok {
		t.Fatal("the newest message was let go")
	}
}

func TestTheOldestGoPastCapacityBytes(t *testing.T) {
	x := attached(t)
	c := counter{}
	big := make([]byte, CapacityBytes/3)
	for i := range 4 {
		x.Put(run, uint64(i), key(i), big, c.done(fmt.Sprint(i)))
	}
	if x.Len() != 3 || c["0"] != 1 || len(c) != 1 {
		t.Fatalf("four messages of a third of CapacityBytes each: %d held, done calls %v; want 3 held, the oldest let go", x.Len(), c)
	}
	x.Put(run, 9, key(9), make([]byte, CapacityBytes+1), c.done("huge"))
	if x.Len() != 1 {
		t.Fatalf("a message larger than CapacityBytes: %d held, want it alone", x.Len())
	}
}

// TestADoneFunctionMayPutTheNextMessage: done runs outside the lock.
func TestADoneFunctionMayPutTheNextMessage(t *testing.T) {
	x := attached(t)
	x.Put(run, 1, key(1), nil, func() { x.Put(run, 2, key(2), nil, nil) })
	x.DropBefore(run, 2)
	if _, _, ok := x.Take(key(2)); !ok {
		t.Fatal("the message put by a done function is not held")
	}
}

func TestOnlyRunsWithAReaderAreHeld(t *testing.T) {
	x := New()
	c := counter{}
	x.Put(run, 1, key(1), nil, c.done("before"))
	if c["before"] != 1 || x.Len() != 0 {
		t.Fatalf("put with no reader attached: done called %d times, %d held; want 1, 0", c["before"], x.Len())
	}
	detach := x.Attach(run)
	second := x.Attach(run) // a second reader: the first one leaving lets nothing go
	other := x.Attach("another")
	x.Put(run, 1, key(1), nil, c.done("attached"))
	x.Put("another", 1, key(2), nil, c.done("another"))
	x.Put("a third", 1, key(3), nil, c.done("a third"))
	if c["a third"] != 1 || x.Len() != 2 {
		t.Fatalf("put for a run nobody reads: done called %d times, %d held; want 1, 2", c["a third"], x.Len())
	}
	detach()
	detach() // a second call does nothing
	if c["attached"] != 0 || x.Len() != 2 {
		t.Fatalf("one of two readers detached: done called %d times, %d held; want 0, 2", c["attached"], x.Len())
	}
	second()
	if c["attached"] != 1 || c["another"] != 0 || x.Len() != 1 {
		t.Fatalf("the last reader of the run detached: done called %d and %d times, %d held; want 1, 0, 1", c["attached"], c["another"], x.Len())
	}
	other()
	x.Put(run, 1, key(1), nil, c.done("after"))
	if c["after"] != 1 || c["another"] != 1 || x.Len() != 0 {
		t.Fatalf("after the readers left: done calls %v, %d held; want everything let go", c, x.Len())
	}
}
