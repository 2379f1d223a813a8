package protocol

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func sampleTask() *Task {
	return &Task{Run: "ab12-cd", Step: 42, Epoch: 3, Shard: 2, Shards: 4, Indices: []int32{5, 9, 0, 59999}}
}

func sampleRefusal() *Refusal {
	return &Refusal{Run: "ab12-cd", Worker: "w-1", Status: 400, ErrorCode: 10002, Description: "account storage resources exceeded"}
}

func sampleGrad() *Grad {
	return &Grad{Run: "ab12-cd", Step: 42, Shard: 2, Worker: "w-1", Weights: [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
		Stats: []ShardStats{{LossSum: 12.5, Correct: 3, Count: 4}}, Grad: []float32{0.5, -1, float32(math.SmallestNonzeroFloat32), 3}}
}

// samplePrefix is a gradient of the first three shards of a step.
func samplePrefix() *Grad {
	g := sampleGrad()
	g.Shard = 0
	g.Stats = []ShardStats{{LossSum: 1.5, Correct: 1, Count: 4}, {LossSum: 2, Correct: 4, Count: 4}, {LossSum: 0.25, Correct: 0, Count: 3}}
	return g
}

// samplePart is the second of two parts of a gradient of 7 values.
func samplePart() *GradPart {
	return &GradPart{Grad: *sampleGrad(), Offset: 4, Total: 7}
}

func sampleParams() *Params {
	return &Params{Run: "ab12-cd", Step: 43, Epoch: 3, Check: [8]byte{7: 7}, Weights: []float32{1, 2, 3}, OptState: []byte{2, 0, 1}}
}

type codec interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in, out codec
	}{
		{sampleTask(), &Task{}},
		{sampleGrad(), &Grad{}},
		{samplePrefix(), &Grad{}},
		{sampleParams(), &Params{}},
		{&Heartbeat{Worker: "w", Tasks: 7}, &Heartbeat{}},
		{sampleRefusal(), &Refusal{}},
	} {
		b, err := tc.in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.out.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", tc.in, err)
		}
		if !reflect.DeepEqual(tc.in, tc.out) {
			t.Fatalf("%T: got %+v, want %+v", tc.in, tc.out, tc.in)
		}
	}
}

func TestRejectsMalformed(t *testing.T) {
	good, _ := sampleGrad().MarshalBinary()
	badVersion := append([]byte{}, good...)
	badVersion[0] = 9
	badKind := append([]byte{}, good...)
	badKind[1] = byte(KindTask)
	trailing := append(append([]byte{}, good...), 0)
	nan := sampleGrad()
	nan.Grad[1] = float32(math.NaN())
	nanBytes, _ := nan.MarshalBinary()
	tooMany := samplePrefix()
	tooMany.Stats[1].Correct = 5
	tooManyBytes, _ := tooMany.MarshalBinary()
	notFromZero := samplePrefix()
	notFromZero.Shard = 1
	notFromZeroBytes, _ := notFromZero.MarshalBinary()
	noShard := sampleGrad()
	noShard.Stats = nil
	noShardBytes, _ := noShard.MarshalBinary()
	badRun := sampleGrad()
	badRun.Run = "a.b"
	badRunBytes, _ := badRun.MarshalBinary()

	for name, b := range map[string][]byte{
		"empty":      nil,
		"version":    badVersion,
		"kind":       badKind,
		"truncated":  good[:len(good)-3],
		"trailing":   trailing,
		"nan":        nanBytes,
		"correct":    tooManyBytes,
		"from shard": notFromZeroBytes,
		"no shard":   noShardBytes,
		"run":        badRunBytes,
		"hugelength": {Version, byte(KindGrad), 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var g Grad
		err := g.UnmarshalBinary(b)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}

	task := sampleTask()
	task.Shard = 4
	b, _ := task.MarshalBinary()
	if err := new(Task).UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("shard out of range: %v", err)
	}
	task = sampleTask()
	task.Indices[0] = -1
	b, _ = task.MarshalBinary()
	if err := new(Task).UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("negative index: %v", err)
	}
}

func TestRefusalsNameARunAndAWorker(t *testing.T) {
	for name, f := range map[string]*Refusal{
		"no run":    {Worker: "w", ErrorCode: 10002},
		"bad run":   {Run: "a.b", Worker: "w", ErrorCode: 10002},
		"no worker": {Run: "ab12", ErrorCode: 10002},
	} {
		b, _ := f.MarshalBinary()
		if err := new(Refusal).UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// TestRefusalOfIsWhatTheCoordinatorHears: a worker reports a refusal for
// want of room, not another error, and what it reports is that refusal
// again, for NoRoomError, naming the worker.
func TestRefusalOfIsWhatTheCoordinatorHears(t *testing.T) {
	quota := &jetstream.APIError{Code: 400, ErrorCode: 10002, Description: "account storage resources exceeded"}
	if _, ok := RefusalOf("ab12", "w-1", &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}); ok {
		t.Fatal("a refusal not for want of room is reported")
	}
	f, ok := RefusalOf("ab12", "w-1", fmt.Errorf("publish: %w", quota))
	if !ok {
		t.Fatal("an account's quota is not reported")
	}
	b, _ := f.MarshalBinary()
	var got Refusal
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	err := got.Err()
	if apiErr := NoRoomError(err); apiErr == nil || *apiErr != *quota {
		t.Fatalf("heard %v, want %v", apiErr, quota)
	}
	if !strings.Contains(err.Error(), "worker w-1") {
		t.Fatalf("%q does not name the worker", err)
	}
}

func TestMsgIDsAreDistinct(t *testing.T) {
	if MsgID("r", 1, 23) == MsgID("r", 12, 3) {
		t.Fatal("message ids collide")
	}
	if !ValidRun("0af-9") || ValidRun("") || ValidRun("A") || ValidRun("a>b") {
		t.Fatal("ValidRun accepts or rejects the wrong strings")
	}
}

func BenchmarkGradCodec(b *testing.B) {
	g := sampleGrad()
	g.Grad = make([]float32, 101770) // MLP 784-128-10
	b.SetBytes(int64(4 * len(g.Grad)))
	for b.Loop() {
		p, _ := g.MarshalBinary()
		var out Grad
		if err := out.UnmarshalBinary(p); err != nil {
			b.Fatal(err)
		}
	}
}

// Senders append into a reused buffer and readers decode into one: the
// bytes and the values are the same as with fresh buffers, and a buffer
// large enough is used in place.
func TestBuffersAreReused(t *testing.T) {
	g := sampleGrad()
	want, _ := g.MarshalBinary()
	buf := make([]byte, 3, 4096)
	got, err := g.AppendBinary(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(got[3:]) != string(want) || &got[0] != &buf[0] {
		t.Fatalf("AppendBinary did not append the encoding in place")
	}
	dst := &Grad{Grad: make([]float32, 16)}
	backing := &dst.Grad[0]
	if err := dst.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dst, g) || &dst.Grad[0] != backing {
		t.Fatalf("decoded %+v into a new array, want %+v in the old one", dst, g)
	}
	small := &Params{Weights: make([]float32, 1)}
	p := sampleParams()
	b, _ := p.AppendBinary(nil)
	if err := small.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(small, p) {
		t.Fatalf("decoding into a short buffer: %+v, %v", small, err)
	}
}

// A snapshot is stored in chunks, not sent as one message: one of a model
// with more parameters than an Adam snapshot fits in MaxPayload (weights and
// two moments) decodes, and so does a commit record, which has no weights.
func TestSnapshotsOverMaxPayloadAndCommitRecordsDecode(t *testing.T) {
	const params = 1_200_000
	big := &Params{Run: "ab12-cd", Step: 7, Check: [8]byte{1: 3}, Weights: make([]float32, params), OptState: make([]byte, 16+8*params)}
	commit := &Params{Run: "ab12-cd", Step: 8, Epoch: 1, Check: [8]byte{2: 5}}
	for name, p := range map[string]*Params{"snapshot": big, "commit record": commit} {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got Params
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s of %d bytes: %v", name, len(b), err)
		}
		if got.Step != p.Step || len(got.Weights) != len(p.Weights) || len(got.OptState) != len(p.OptState) || got.Snapshot() != p.Snapshot() {
			t.Fatalf("%s came back as step %d with %d weights, %d state bytes", name, got.Step, len(got.Weights), len(got.OptState))
		}
	}
}

// BenchmarkGradDecode is the coordinator's side of a gradient of the
// default MLP (784-256-10): decoded into a reused buffer and checked for
// values that are not finite.
func BenchmarkGradDecode(b *testing.B) {
	g := sampleGrad()
	g.Grad = make([]float32, 203530)
	for i := range g.Grad {
		g.Grad[i] = float32(i%1000) * 1e-4
	}
	p, err := g.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(p)))
	var out Grad
	for b.Loop() {
		if err := out.UnmarshalBinary(p); err != nil {
			b.Fatal(err)
		}
	}
}

func TestGradSubjectStep(t *testing.T) {
	if step, ok := GradSubjectStep(GradSubject("7c68a83c0dcdfe4f", 1234, 3)); !ok || step != 1234 {
		t.Fatalf("GradSubjectStep(GradSubject(run, 1234, 3)) = %d, %v", step, ok)
	}
	for _, s := range []string{"jt.grads.run.12", "jt.grads.run.12.3.4", "jt.grads..12.3", "jt.grads.run.x.3", "jt.grads.run.12.x", "jt.tasks.run", "jt.grads.run.-1.0"} {
		if step, ok := GradSubjectStep(s); ok {
			t.Errorf("GradSubjectStep(%q) = %d, true; want not a gradient subject", s, step)
		}
	}
}

// A DatasetRef from the runs bucket names a directory and files on a
// worker's disk: only a hex sha256 and plain file names pass.
func TestDatasetRefValidate(t *testing.T) {
	digest := strings.Repeat("0a", 32)
	good := DatasetRef{Name: "fashion-mnist", Digest: digest, Files: []string{"train-images-idx3-ubyte.gz"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good ref: %v", err)
	}
	for name, bad := range map[string]DatasetRef{
		"digest climbing out": {Digest: "../../../home", Files: good.Files},
		"upper-case digest":   {Digest: strings.ToUpper(digest), Files: good.Files},
		"short digest":        {Digest: digest[:63], Files: good.Files},
		"no files":            {Digest: digest},
		"parent file":         {Digest: digest, Files: []string{".."}},
		"file in a subdir":    {Digest: digest, Files: []string{"a/b"}},
		"backslash":           {Digest: digest, Files: []string{`a\b`}},
		"empty file name":     {Digest: digest, Files: []string{""}},
	} {
		if err := bad.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}
