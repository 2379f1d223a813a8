package protocol

import (
	"bytes"
	"testing"
)

// fuzzDecoder checks that decoding never panics and that whatever decodes
// encodes back to the same bytes.
func fuzzDecoder[T any, P interface {
	*T
	codec
}](f *testing.F, seeds ...codec) {
	for _, s := range seeds {
		b, _ := s.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v T
		if err := P(&v).UnmarshalBinary(b); err != nil {
			return
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
func FuzzGrad(f *testing.F)      { fuzzDecoder[Grad](f, sampleGrad()) }
func FuzzParams(f *testing.F)    { fuzzDecoder[Params](f, sampleParams()) }
func FuzzHeartbeat(f *testing.F) { fuzzDecoder[Heartbeat](f, &Heartbeat{Worker: "w", Tasks: 1}) }
