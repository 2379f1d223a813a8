package protocol

import (
	"bytes"
	"reflect"
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
