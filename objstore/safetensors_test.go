package objstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

func testTensors() []Tensor {
	w := make([]float32, 6)
	for i := range w {
		w[i] = float32(i) - 2.5
	}
	return []Tensor{
		{Name: "layer1.weight", Shape: []int{2, 3}, Data: w},
		{Name: "layer0.bias", Shape: []int{2}, Data: []float32{float32(math.Inf(1)), -0}},
		{Name: "scale", Shape: []int{}, Data: []float32{math.MaxFloat32}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
}

func sortedTensors() []Tensor {
	ts := testTensors()
	return []Tensor{ts[3], ts[1], ts[0], ts[2]}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteSafetensors(&a, testTensors()); err != nil {
		t.Fatal(err)
	}
	ts := testTensors()
	ts[0], ts[2] = ts[2], ts[0]
	if err := WriteSafetensors(&b, ts); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("input order changed the bytes")
	}
	if n := int(a.Bytes()[0]); (8+n)%8 != 0 {
		t.Fatalf("header length %d is not 8-byte aligned", n)
	}
	got, err := ReadSafetensors(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, sortedTensors()) {
		t.Fatalf("read back %+v", got)
	}
	for _, bad := range [][]Tensor{
		{{Name: "x", Shape: []int{2}, Data: []float32{1}}},
		{{Name: "x", Shape: []int{1}, Data: []float32{1}}, {Name: "x", Shape: []int{1}, Data: []float32{1}}},
		{{Name: "", Shape: []int{1}, Data: []float32{1}}},
		{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}},
		{{Name: "x", Shape: []int{-1}, Data: []float32{}}},
	} {
		if err := WriteSafetensors(&bytes.Buffer{}, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("WriteSafetensors(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestSafetensorsRejects(t *testing.T) {
	var good bytes.Buffer
	WriteSafetensors(&good, testTensors())
	for name, data := range safetensorsBadInputs(good.Bytes()) {
		if _, err := ReadSafetensors(bytes.NewReader(data)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func safetensorsBadInputs(good []byte) map[string][]byte {
	hdr := func(s string) []byte {
		b := make([]byte, 8, 8+len(s)+8)
		b[0] = byte(len(s))
		return append(b, s...)
	}
	return map[string][]byte{
		"empty":          nil,
		"truncated data": good[:len(good)-1],
		"trailing data":  append(append([]byte{}, good...), 0),
		"short header":   good[:12],
		"f16":            append(hdr(`{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`), 0, 0),
		"duplicate":      append(hdr(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[],"data_offsets":[4,8]}}`), make([]byte, 8)...),
		"hole":           append(hdr(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)...),
		"overlap":        append(hdr(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), make([]byte, 4)...),
		"shape mismatch": append(hdr(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`), make([]byte, 4)...),
		"unknown field":  append(hdr(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"z":1}}`), make([]byte, 4)...),
		"not an object":  hdr(`[1,2]   `),
		"bad metadata":   hdr(`{"__metadata__":{"a":1}}`),
	}
}

func TestPutBest(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		if err := s.PutBest(ctx, testRun, testTensors()); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetBest(ctx, testRun)
		if err != nil || !reflect.DeepEqual(got, sortedTensors()) {
			t.Fatalf("GetBest = %+v, %v", got, err)
		}
	})
}

// Another reader reads our file: python3 with numpy (or, without numpy,
// the standard library's array module) through a 15-line reader.
func TestSafetensorsReadByPython(t *testing.T) {
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	reader := "numpy"
	if err := exec.Command(python, "-c", "import numpy").Run(); err != nil {
		reader = "array" // the standard library's typed arrays: still an independent reader
	}
	t.Logf("reading with python3 %s", reader)
	path := filepath.Join(t.TempDir(), "best.safetensors")
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, testTensors()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `
import json, struct, sys
from array import array
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
out = {}
for name, info in header.items():
    if name == "__metadata__":
        continue
    b, e = info["data_offsets"]
    if sys.argv[2] == "numpy":
        import numpy as np
        a = np.frombuffer(data[b:e], dtype="<f4").reshape(info["shape"])
        out[name] = {"shape": list(a.shape), "bits": [int(x) for x in a.reshape(-1).view("<u4")]}
    else:
        a = array("I", data[b:e])
        if sys.byteorder != "little":
            a.byteswap()
        out[name] = {"shape": info["shape"], "bits": list(a)}
print(json.dumps(out))
`
	out, err := exec.Command(python, "-c", script, path, reader).Output()
	if err != nil {
		t.Fatalf("python reader: %v", err)
	}
	var got map[string]struct {
		Shape []int
		Bits  []uint32
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(testTensors()) {
		t.Fatalf("python read %d tensors", len(got))
	}
	for _, want := range testTensors() {
		g := got[want.Name]
		if len(g.Shape) != len(want.Shape) || len(g.Bits) != len(want.Data) {
			t.Fatalf("%s: python read shape %v with %d values", want.Name, g.Shape, len(g.Bits))
		}
		for i, d := range want.Shape {
			if g.Shape[i] != d {
				t.Fatalf("%s: python shape %v, want %v", want.Name, g.Shape, want.Shape)
			}
		}
		for i, v := range want.Data {
			if g.Bits[i] != math.Float32bits(v) {
				t.Fatalf("%s[%d]: python read bits %#x, want %#x", want.Name, i, g.Bits[i], math.Float32bits(v))
			}
		}
	}
}
