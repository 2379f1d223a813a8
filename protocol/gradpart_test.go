package protocol

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// bigGrad is a gradient of n distinct values.
func bigGrad(worker string, n int) *Grad {
	g := samplePrefix()
	g.Worker = worker
	g.Grad = make([]float32, n)
	for i := range g.Grad {
		g.Grad[i] = float32(i) * 0.25
	}
	return g
}

// split encodes g for maxPayload and decodes every message: whole
// gradients and parts.
func split(t *testing.T, g *Grad, maxPayload int) (whole []*Grad, parts []*GradPart) {
	t.Helper()
	b, msgs, err := g.AppendParts([]byte("kept"), maxPayload)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:4]) != "kept" {
		t.Fatal("AppendParts changed what b held")
	}
	from := 4
	next := 0
	for _, m := range msgs {
		msg := b[from:m.End]
		from = m.End
		if m.Offset != next || m.Values < 1 {
			t.Fatalf("a message of values %d..%d after %d", m.Offset, m.Offset+m.Values-1, next)
		}
		next += m.Values
		if len(msg) > maxPayload {
			t.Fatalf("a message of %d bytes, over the max payload of %d", len(msg), maxPayload)
		}
		if !IsGradPart(msg) {
			var w Grad
			if err := w.UnmarshalBinary(msg); err != nil {
				t.Fatal(err)
			}
			whole = append(whole, &w)
			continue
		}
		var p GradPart
		if err := p.UnmarshalBinary(msg); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, &p)
	}
	if from != len(b) || next != len(g.Grad) {
		t.Fatalf("messages end at %d of %d bytes, with %d of %d values", from, len(b), next, len(g.Grad))
	}
	return whole, parts
}

func sameGrad(t *testing.T, got, want *Grad) {
	t.Helper()
	if got.Run != want.Run || got.Step != want.Step || got.Shard != want.Shard || got.Weights != want.Weights || !slices.Equal(got.Stats, want.Stats) {
		t.Fatalf("assembled %s step %d shard %d (%d stats), want %s step %d shard %d (%d stats)",
			got.Run, got.Step, got.Shard, len(got.Stats), want.Run, want.Step, want.Shard, len(want.Stats))
	}
	if len(got.Grad) != len(want.Grad) {
		t.Fatalf("assembled %d values, want %d", len(got.Grad), len(want.Grad))
	}
	for i := range want.Grad {
		if math.Float32bits(got.Grad[i]) != math.Float32bits(want.Grad[i]) {
			t.Fatalf("value %d: %v, want %v", i, got.Grad[i], want.Grad[i])
		}
	}
}

// A gradient that fits the max payload goes as one message; one that does
// not goes in parts, each within it, that an assembler puts back together
// bit for bit — in any order, and with one sender's parts standing in for
// another's (split elsewhere, with another max payload).
func TestGradientsTooLargeForAMessageGoInParts(t *testing.T) {
	g := bigGrad("w-1", 1000)
	whole, parts := split(t, g, 8192)
	if len(whole) != 1 || len(parts) != 0 {
		t.Fatalf("a gradient of 4 KB under an 8 KB max payload: %d whole, %d parts", len(whole), len(parts))
	}
	sameGrad(t, whole[0], g)

	whole, parts = split(t, g, 1024)
	if len(whole) != 0 || len(parts) < 4 {
		t.Fatalf("a gradient of 4 KB under a 1 KB max payload: %d whole, %d parts", len(whole), len(parts))
	}
	a := NewAssembler(4, 1000)
	for i := len(parts) - 1; i >= 0; i-- { // backwards
		got, first, done := a.add(parts[i], uint64(10+i))
		if done != (i == 0) {
			t.Fatalf("part %d of %d: done = %v", i, len(parts), done)
		}
		if done {
			sameGrad(t, got, g)
			if first != uint64(10+len(parts)-1) {
				t.Fatalf("first part's sequence %d, want %d (the one that came first)", first, 10+len(parts)-1)
			}
		}
	}
	if a.inProgress() != 0 {
		t.Fatalf("%d gradients left in progress", a.inProgress())
	}

	// Another worker split the same gradient with a 700-byte max payload:
	// its parts overlap the first one's, with the same values.
	_, other := split(t, bigGrad("w-22", 1000), 700)
	var got *Grad
	for i, p := range append(parts[:len(parts)/2], other[len(other)/2:]...) {
		if g2, _, done := a.add(p, uint64(i)); done {
			got = g2
		}
	}
	if got == nil {
		t.Fatal("halves of two workers' parts did not complete the gradient")
	}
	sameGrad(t, got, g)
}

// Parts of different gradients (another step, other weights, a sum of more
// shards) never mix; an assembler keeps the newest in progress when it must
// drop one, reports the earliest first part it still waits on, and forgets
// the steps nobody waits for.
func TestAssemblerKeepsGradientsApart(t *testing.T) {
	base := bigGrad("w", 300)
	otherStep, otherWeights := bigGrad("w", 300), bigGrad("w", 300)
	otherStep.Step++
	otherWeights.Weights[0]++
	_, p1 := split(t, base, 400)
	_, p2 := split(t, otherStep, 400)
	_, p3 := split(t, otherWeights, 400)
	a := NewAssembler(2, 300)
	a.add(p1[0], 5)
	a.add(p2[0], 6)
	if a.Floor() != 5 {
		t.Fatalf("floor %d, want 5", a.Floor())
	}
	a.add(p3[0], 7) // drops base's, the earliest
	if a.inProgress() != 2 || a.Floor() != 6 {
		t.Fatalf("%d in progress from %d, want 2 from 6", a.inProgress(), a.Floor())
	}
	a.DropBefore(base.Run, otherStep.Step)
	if a.inProgress() != 1 {
		t.Fatalf("%d in progress after dropping the steps before %d, want 1 (%d's)", a.inProgress(), otherStep.Step, otherStep.Step)
	}
	if _, _, done := a.add(p1[0], 10); done || a.inProgress() != 1 {
		t.Fatalf("a part of a dropped step taken: done %v, %d in progress, want 1", done, a.inProgress())
	}
	var got *Grad
	for _, p := range p2[1:] {
		if g, first, done := a.add(p, 9); done {
			if first != 6 {
				t.Fatalf("first sequence %d, want 6", first)
			}
			got = g
		}
	}
	if got == nil {
		t.Fatal("the other step's gradient did not complete")
	}
	sameGrad(t, got, otherStep)

	b := NewAssembler(4, 300)
	for _, p := range p1[1:] {
		if _, _, done := b.add(p, 8); done {
			t.Fatal("a gradient completed without its first part")
		}
	}
	// A part claiming a gradient of another size (here the largest there
	// may be) is ignored: it would cost a buffer of that size.
	huge := &GradPart{Grad: *sampleGrad(), Total: MaxParameters}
	if _, _, done := b.add(huge, 9); done || b.inProgress() != 1 {
		t.Fatalf("a part of a gradient of another size: done %v, %d in progress, want 1", done, b.inProgress())
	}
}

// A part whose values would fall outside its gradient, or of an impossible
// size, is malformed; a max payload that holds no value refuses to split.
func TestMalformedParts(t *testing.T) {
	for name, p := range map[string]*GradPart{
		"past its total":  {Grad: *sampleGrad(), Offset: 5, Total: 7},
		"over the limit":  {Grad: *sampleGrad(), Offset: 0, Total: MaxParameters + 1},
		"no values":       {Grad: Grad{Run: "ab12", Worker: "w", Stats: []ShardStats{{Count: 1}}}, Total: 3},
		"shards past one": {Grad: Grad{Run: "ab12", Shard: 1, Worker: "w", Stats: []ShardStats{{Count: 1}, {Count: 1}}, Grad: []float32{1}}, Total: 3},
	} {
		b, _ := p.MarshalBinary()
		var got GradPart
		if err := got.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: decoded with %v", name, err)
		}
	}
	if _, _, err := bigGrad("w", 100).AppendParts(nil, 60); err == nil {
		t.Error("split a gradient for a max payload smaller than a part's header")
	}
}

// Decode takes what a reader of the grads stream finds: whole gradients,
// decoded into the buffer it is given, and parts, which give a gradient
// with the last of them, named by the sequence of the first; a malformed
// message of either kind is an error.
func TestDecodeTakesWholeGradientsAndParts(t *testing.T) {
	g := bigGrad("w", 300)
	b, msgs, err := g.AppendParts(nil, 400)
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := g.MarshalBinary()
	a := NewAssembler(2, 300)
	var got Grad
	if first, ok, err := a.Decode(whole, 7, &got); err != nil || !ok || first != 7 {
		t.Fatalf("a whole gradient: first %d, ok %v, err %v", first, ok, err)
	}
	sameGrad(t, &got, g)
	got = Grad{}
	from := 0
	for i, m := range msgs {
		first, ok, err := a.Decode(b[from:m.End], uint64(20+i), &got)
		from = m.End
		if err != nil || ok != (i == len(msgs)-1) {
			t.Fatalf("part %d of %d: ok %v, err %v", i, len(msgs), ok, err)
		}
		if ok && first != 20 {
			t.Fatalf("put together from the part at 20, named %d", first)
		}
	}
	sameGrad(t, &got, g)
	for _, bad := range [][]byte{whole[:len(whole)-4], b[:msgs[0].End-4]} {
		if _, ok, err := a.Decode(bad, 1, &got); !errors.Is(err, ErrMalformed) || ok {
			t.Errorf("a malformed %s: ok %v, err %v", map[bool]string{true: "part", false: "gradient"}[IsGradPart(bad)], ok, err)
		}
	}
}

// PartOverhead bounds what a part takes besides its values, whatever the
// ids: a max payload of it (less HeaderRoom) and room for k values gives
// parts of k values at least, each within the payload.
func TestPartOverheadBoundsAPart(t *testing.T) {
	const k = 100
	for _, shards := range []int{1, 4, MaxShards} {
		g := Grad{Run: strings.Repeat("r", MaxRunLen), Worker: strings.Repeat("w", MaxWorkerLen), Stats: make([]ShardStats, shards), Grad: make([]float32, 10*k)}
		for i := range g.Stats {
			g.Stats[i].Count = 1
		}
		payload := PartOverhead(shards) - HeaderRoom + 4*k
		b, msgs, err := g.AppendParts(nil, payload)
		if err != nil {
			t.Fatalf("%d shards: %v", shards, err)
		}
		from := 0
		for i, m := range msgs {
			if m.End-from > payload || i < len(msgs)-1 && m.Values < k {
				t.Fatalf("%d shards: part %d of %d bytes and %d values, in a payload of %d", shards, i, m.End-from, m.Values, payload)
			}
			from = m.End
		}
		if from != len(b) {
			t.Fatalf("%d shards: parts end at %d of %d bytes", shards, from, len(b))
		}
	}
}
