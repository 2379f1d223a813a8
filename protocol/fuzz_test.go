package protocol

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzDecoder checks that decoding never panics, that whatever decodes
// encodes back to the same bytes, and that decoding into a value reused from
// earlier inputs (as readers do, to reuse tensor buffers) gives the same
// result as decoding into a fresh one.
func fuzzDecoder[T any, P interface {
	*T
	codec
}](f *testing.F, seeds ...codec) {
	for _, s := range seeds {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	var reused T
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		err := P(&v).UnmarshalBinary(b)
		rerr := P(&reused).UnmarshalBinary(b)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("fresh decode: %v; reused decode: %v", err, rerr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(v, reused) {
			t.Fatalf("reused decode differs:\nfresh  %+v\nreused %+v", v, reused)
		}
		out, err := P(&v).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}

func FuzzTask(f *testing.F)      { fuzzDecoder[Task](f, sampleTask()) }
func FuzzGrad(f *testing.F)      { fuzzDecoder[Grad](f, sampleGrad(), samplePrefix()) }
func FuzzParams(f *testing.F)    { fuzzDecoder[Params](f, sampleParams()) }
func FuzzHeartbeat(f *testing.F) { fuzzDecoder[Heartbeat](f, &Heartbeat{Worker: "w", Tasks: 1}) }
func FuzzRefusal(f *testing.F)   { fuzzDecoder[Refusal](f, sampleRefusal()) }
func FuzzGradPart(f *testing.F)  { fuzzDecoder[GradPart](f, samplePart()) }

var updateCorpus = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz from the sample messages")

// seedCorpus is the committed seed corpus: every sample message, and each
// cut short by 4 bytes, encoded with the current codec.
func seedCorpus() map[string][]byte {
	full := map[string]codec{
		"FuzzTask/valid":      sampleTask(),
		"FuzzGrad/valid":      sampleGrad(),
		"FuzzGrad/prefix":     samplePrefix(),
		"FuzzParams/valid":    sampleParams(),
		"FuzzParams/commit":   &Params{Run: "ab12-cd", Step: 44, Epoch: 3, Check: [8]byte{0: 9, 7: 1}},
		"FuzzHeartbeat/valid": &Heartbeat{Worker: "w", Tasks: 1},
		"FuzzRefusal/valid":   sampleRefusal(),
		"FuzzGradPart/valid":  samplePart(),
	}
	seeds := make(map[string][]byte)
	for name, m := range full {
		b, _ := m.MarshalBinary()
		seeds[name] = b
		if strings.HasSuffix(name, "/valid") {
			seeds[strings.TrimSuffix(name, "valid")+"truncated"] = b[:len(b)-4]
		}
	}
	return seeds
}

// The seed corpus holds the current encodings (go test ./protocol -run
// SeedCorpus -update rewrites it): seeds of an older codec version would
// all be refused at their first byte and fuzz nothing past it.
func TestSeedCorpusIsCurrent(t *testing.T) {
	for name, b := range seedCorpus() {
		path := filepath.Join("testdata", "fuzz", filepath.FromSlash(name))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if *updateCorpus {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s is not the current encoding (rewrite with -update):\n got %s\nwant %s", path, got, want)
		}
	}
}
