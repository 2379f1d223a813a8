package objstore

import (
	"errors"
	"math"
	"reflect"
	"testing"
)

func floatBits(v float32) uint32 { return math.Float32bits(v) }

func TestCheckpointEncoding(t *testing.T) {
	want := testCheckpoint(1234, 3)
	want.Weights[7] = float32(math.NaN())
	b, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got Checkpoint
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if floatBits(got.Weights[7]) != floatBits(want.Weights[7]) {
		t.Fatal("NaN weight changed")
	}
	got.Weights[7], want.Weights[7] = 0, 0
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("round trip: %+v", got)
	}
	// Every truncation is rejected.
	for n := 0; n < len(b); n++ {
		if err := new(Checkpoint).UnmarshalBinary(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
	// nil and empty Partial are distinct.
	for _, p := range [][]byte{nil, {}} {
		ck := &Checkpoint{Run: "ab", Partial: p}
		b, _ := ck.MarshalBinary()
		var back Checkpoint
		if err := back.UnmarshalBinary(b); err != nil || (back.Partial == nil) != (p == nil) {
			t.Fatalf("Partial %v came back %v (%v)", p, back.Partial, err)
		}
	}
}

func TestCheckpointValidate(t *testing.T) {
	for name, ck := range map[string]*Checkpoint{
		"empty run":      {},
		"bad run":        {Run: "../x"},
		"step too big":   {Run: "a", Step: MaxStep + 1},
		"negative epoch": {Run: "a", Epoch: -1},
		"epochs repeat":  {Run: "a", Step: 9, History: []HistoryEntry{{Epoch: 1}, {Epoch: 1}}},
		"history ahead":  {Run: "a", Step: 9, History: []HistoryEntry{{Epoch: 0, Step: 10}}},
		"NaN loss":       {Run: "a", History: []HistoryEntry{{TrainLoss: math.NaN()}}},
	} {
		if _, err := ck.MarshalBinary(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}
