package handoff

import (
	"fmt"
	"testing"
)

// attached is a new Exchange with a reader attached for the test's time.
func attached(t *testing.T) *Exchange {
	x := New()
	t.Cleanup(x.Attach())
	return x
}

// counter counts the calls of the done functions it makes, by name.
type counter map[string]int

func (c counter) done(name string) func() { return func() { c[name]++ } }

func TestTakeReturnsWhatWasPutUnderTheSameKey(t *testing.T) {
	x := attached(t)
	c := counter{}
	a := Key{MsgID: "run/3/0+4/ab", Worker: "w1"}
	x.Put(a, 3, []byte("gradient"), c.done("a"))
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
	if c["a"] != 1 || x.Len() != 0 || x.Taken() != 1 {
		t.Fatalf("after the taker is done: done called %d times, %d held, %d taken; want 1, 0, 1", c["a"], x.Len(), x.Taken())
	}
	if _, _, ok := x.Take(a); ok {
		t.Fatal("a message was taken twice")
	}
}

func TestADoneFunctionIsNeverNil(t *testing.T) {
	x := attached(t)
	k := Key{MsgID: "m", Worker: "w"}
	x.Put(k, 1, nil, nil)
	_, done, ok := x.Take(k)
	if !ok || done == nil {
		t.Fatalf("Take = %v, done nil %v", ok, done == nil)
	}
	done()
}

func TestEveryMessageLetGoIsDoneOnce(t *testing.T) {
	x := attached(t)
	c := counter{}
	k := func(i int) Key { return Key{MsgID: fmt.Sprint(i), Worker: "w"} }
	x.Put(k(1), 1, nil, c.done("1"))
	x.Put(k(1), 1, nil, c.done("1 again")) // replaces the first
	x.Put(k(2), 2, nil, c.done("2"))
	x.Put(k(3), 3, nil, c.done("3"))
	x.Put(k(4), 4, nil, c.done("4"))
	x.Drop(k(4))
	x.Drop(k(4)) // no longer held: nothing happens
	x.DropBefore(3)
	want := counter{"1": 1, "1 again": 1, "2": 1, "4": 1}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("done calls %v, want %v", c, want)
	}
	if x.Len() != 1 {
		t.Fatalf("%d held, want step 3's", x.Len())
	}
	if _, _, ok := x.Take(k(3)); !ok {
		t.Fatal("DropBefore(3) let step 3's message go")
	}
}

func TestTheOldestGoPastCapacity(t *testing.T) {
	x := attached(t)
	c := counter{}
	for i := range Capacity + 2 {
		x.Put(Key{MsgID: fmt.Sprint(i), Worker: "w"}, uint64(i), nil, c.done(fmt.Sprint(i)))
	}
	if x.Len() != Capacity {
		t.Fatalf("%d held, want %d", x.Len(), Capacity)
	}
	if c["0"] != 1 || c["1"] != 1 || len(c) != 2 {
		t.Fatalf("done calls %v, want the two oldest's", c)
	}
	for _, i := range []int{0, 1} {
		if _, _, ok := x.Take(Key{MsgID: fmt.Sprint(i), Worker: "w"}); ok {
			t.Fatalf("message %d is still held past capacity", i)
		}
	}
	if _, _, ok := x.Take(Key{MsgID: fmt.Sprint(Capacity + 1), Worker: "w"}); !ok {
		t.Fatal("the newest message was let go")
	}
}

// TestADoneFunctionMayPutTheNextMessage: done runs outside the lock.
func TestADoneFunctionMayPutTheNextMessage(t *testing.T) {
	x := attached(t)
	next := Key{MsgID: "next", Worker: "w"}
	x.Put(Key{MsgID: "first", Worker: "w"}, 1, nil, func() { x.Put(next, 2, nil, nil) })
	x.DropBefore(2)
	if _, _, ok := x.Take(next); !ok {
		t.Fatal("the message put by a done function is not held")
	}
}

func TestNothingIsHeldWithoutAReader(t *testing.T) {
	x := New()
	c := counter{}
	k := Key{MsgID: "m", Worker: "w"}
	x.Put(k, 1, nil, c.done("before"))
	if c["before"] != 1 || x.Len() != 0 {
		t.Fatalf("put with no reader attached: done called %d times, %d held; want 1, 0", c["before"], x.Len())
	}
	detach := x.Attach()
	second := x.Attach() // a second reader: the first one leaving lets nothing go
	x.Put(k, 1, nil, c.done("attached"))
	detach()
	detach() // a second call does nothing
	if c["attached"] != 0 || x.Len() != 1 {
		t.Fatalf("one of two readers detached: done called %d times, %d held; want 0, 1", c["attached"], x.Len())
	}
	second()
	if c["attached"] != 1 || x.Len() != 0 {
		t.Fatalf("the last reader detached: done called %d times, %d held; want 1, 0", c["attached"], x.Len())
	}
	x.Put(k, 1, nil, c.done("after"))
	if c["after"] != 1 || x.Len() != 0 {
		t.Fatalf("put after the readers left: done called %d times, %d held; want 1, 0", c["after"], x.Len())
	}
}
