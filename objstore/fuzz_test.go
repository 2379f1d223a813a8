package objstore

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var rewriteSeeds = flag.Bool("rewrite-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// TestFuzzSeeds writes the seed corpus of the fuzz targets to testdata/fuzz
// when run with -rewrite-seeds; go test runs those seeds every time.
func TestFuzzSeeds(t *testing.T) {
	if !*rewriteSeeds {
		t.Skip("run with -rewrite-seeds to regenerate testdata/fuzz")
	}
	write := func(target, name string, data []byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, ck := range map[string]*Checkpoint{"full": testCheckpoint(10, 2), "minimal": {Run: "a"}, "empty-partial": {Run: "b", Partial: []byte{}}} {
		b, err := ck.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzCheckpointUnmarshal", name, b)
	}
	var good bytes.Buffer
	WriteSafetensors(&good, testTensors())
	write("FuzzReadSafetensors", "good", good.Bytes())
	for name, b := range safetensorsBadInputs(good.Bytes()) {
		write("FuzzReadSafetensors", name, b)
	}
}

func FuzzCheckpointUnmarshal(f *testing.F) {
	for _, ck := range []*Checkpoint{testCheckpoint(10, 2), {Run: "a"}, {Run: "b", Partial: []byte{}}} {
		b, err := ck.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("JTCK\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ck Checkpoint
		err := ck.UnmarshalBinary(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error %v wraps neither ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		again, err := ck.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded checkpoint does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs: %x vs %x", again, data)
		}
	})
}

func FuzzReadSafetensors(f *testing.F) {
	var good bytes.Buffer
	WriteSafetensors(&good, testTensors())
	f.Add(good.Bytes())
	for _, b := range safetensorsBadInputs(good.Bytes()) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ReadSafetensors(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts); err != nil {
			t.Fatalf("tensors read do not write: %v", err)
		}
		back, err := ReadSafetensors(&buf)
		if err != nil || !reflect.DeepEqual(normalize(back), normalize(ts)) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// normalize compares tensors by bit pattern, so NaNs compare equal.
func normalize(ts []Tensor) [][]uint32 {
	out := make([][]uint32, len(ts))
	for i, t := range ts {
		for _, v := range t.Data {
			out[i] = append(out[i], floatBits(v))
		}
	}
	return out
}
