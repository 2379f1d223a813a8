package model

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes encodes an IDX file of unsigned bytes.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// writeFashion writes a tiny well-formed Fashion-MNIST directory of n train and n test images.
func writeFashion(t *testing.T, n int) string {
	dir := t.TempDir()
	img := make([]byte, n*28*28)
	for i := range img {
		img[i] = byte(i)
	}
	lab := make([]byte, n)
	for i := range lab {
		lab[i] = byte(i % 10)
	}
	for i, name := range FashionMNISTFiles {
		b := idxBytes([]int{n, 28, 28}, img)
		if i%2 == 1 {
			b = idxBytes([]int{n}, lab)
		}
		if err := os.WriteFile(filepath.Join(dir, name), gz(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDecodeIDX(t *testing.T) {
	dims, data, err := decodeIDX(idxBytes([]int{2, 3}, []byte{1, 2, 3, 4, 5, 6}))
	if err != nil || len(dims) != 2 || dims[0] != 2 || dims[1] != 3 || len(data) != 6 {
		t.Fatalf("%v %v %v", dims, data, err)
	}
	bad := map[string][]byte{
		"short":     {0, 0},
		"magic":     {1, 0, 8, 1, 0, 0, 0, 1, 0},
		"type":      {0, 0, 0x0d, 1, 0, 0, 0, 1, 0},
		"ndims":     {0, 0, 8, 0},
		"header":    {0, 0, 8, 2, 0, 0, 0, 1},
		"zero dim":  idxBytes([]int{0}, nil),
		"huge":      idxBytes([]int{1 << 20, 1 << 20}, nil),
		"truncated": idxBytes([]int{4}, []byte{1, 2, 3}),
		"trailing":  idxBytes([]int{2}, []byte{1, 2, 3}),
	}
	for name, b := range bad {
		if _, _, err := decodeIDX(b); !errors.Is(err, errIDX) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := readIDX(gz(idxBytes([]int{1}, []byte{7}))); err != nil {
		t.Errorf("gzipped: %v", err)
	}
	if _, _, err := readIDX([]byte{0x1f, 0x8b, 0, 0}); !errors.Is(err, errIDX) {
		t.Errorf("corrupt gzip: %v", err)
	}
}

// FuzzDecodeIDX: the decoder never panics, never allocates beyond its bound, and whatever it
// accepts is self-consistent. Seed corpus in testdata/fuzz/FuzzDecodeIDX.
func FuzzDecodeIDX(f *testing.F) {
	f.Add(idxBytes([]int{2, 2}, []byte{1, 2, 3, 4}))
	f.Add(gz(idxBytes([]int{1}, []byte{9})))
	f.Fuzz(func(t *testing.T, b []byte) {
		dims, data, err := readIDX(b)
		if err != nil {
			if !errors.Is(err, errIDX) {
				t.Fatalf("error does not wrap errIDX: %v", err)
			}
			return
		}
		total := 1
		for _, d := range dims {
			total *= d
		}
		if total != len(data) {
			t.Fatalf("dims %v but %d bytes", dims, len(data))
		}
	})
}

func TestLoadFashionMNISTSmall(t *testing.T) {
	dir := writeFashion(t, 3)
	ds, err := LoadFashionMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ds.Train.N != 3 || ds.Test.N != 3 || len(ds.Train.Levels) != 3*784 || len(ds.Test.X) != 3*784 || ds.Train.Y[2] != 2 || ds.Classes != 10 {
		t.Fatalf("%+v", ds.Train.Y)
	}
	if ds.Train.X != nil || ds.Test.Levels != nil {
		t.Errorf("training images kept as values (%d) or test images as levels (%d)", len(ds.Train.X), len(ds.Test.Levels))
	}
	if ds.Test.X[1] != 1.0/255 || ds.Test.X[255] != 1 {
		t.Errorf("scaling: %v %v", ds.Test.X[1], ds.Test.X[255])
	}
	// Gathered training samples are the values the test split holds for
	// the same levels: float32(v)/255.
	x, y := make([]float32, 2*784), make([]uint8, 2)
	ds.Train.Gather([]int32{2, 0}, x, y)
	for i, v := range ds.Train.Levels[2*784:] {
		if want := float32(v) / 255; x[i] != want {
			t.Fatalf("sample 2 value %d: %v, want %v", i, x[i], want)
		}
	}
	if x[784+1] != 1.0/255 || x[784+255] != 1 || y[0] != 2 || y[1] != ds.Train.Y[0] {
		t.Errorf("gathered %v %v, labels %v", x[784+1], x[784+255], y)
	}
	ds2, _ := LoadFashionMNIST(dir)
	if ds.Digest != ds2.Digest || len(ds.Digest) != 64 {
		t.Errorf("digest %q vs %q", ds.Digest, ds2.Digest)
	}
}

func TestLoadFashionMNISTErrors(t *testing.T) {
	check := func(name, dir, file string) {
		t.Helper()
		_, err := LoadFashionMNIST(dir)
		if !errors.Is(err, ErrDataset) || !strings.Contains(err.Error(), "apt-get install dataset-fashion-mnist") ||
			!strings.Contains(err.Error(), filepath.Join(dir, file)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", name, err)
		}
	}
	check("missing dir", filepath.Join(t.TempDir(), "nope"), FashionMNISTFiles[0])

	dir := writeFashion(t, 2)
	os.WriteFile(filepath.Join(dir, FashionMNISTFiles[3]), gz(idxBytes([]int{3}, []byte{1, 2, 3})), 0o644)
	check("label count", dir, FashionMNISTFiles[3])

	dir = writeFashion(t, 2)
	os.WriteFile(filepath.Join(dir, FashionMNISTFiles[1]), gz(idxBytes([]int{2}, []byte{1, 10})), 0o644)
	check("label value", dir, FashionMNISTFiles[1])

	dir = writeFashion(t, 2)
	os.WriteFile(filepath.Join(dir, FashionMNISTFiles[0]), gz(idxBytes([]int{2, 27, 28}, make([]byte, 2*27*28))), 0o644)
	check("image shape", dir, FashionMNISTFiles[0])

	dir = writeFashion(t, 2)
	os.WriteFile(filepath.Join(dir, FashionMNISTFiles[2]), []byte("not gzip at all"), 0o644)
	check("garbage", dir, FashionMNISTFiles[2])

	if _, err := LoadDataset("imagenet", ""); !errors.Is(err, ErrDataset) {
		t.Errorf("unknown dataset: %v", err)
	}
}

// TestFashionMNISTInstalled checks the real files when they are installed.
func TestFashionMNISTInstalled(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if _, err := os.Stat(DefaultFashionMNISTDir); err != nil {
		t.Skip("dataset-fashion-mnist not installed")
	}
	ds, err := LoadDataset(DatasetFashionMNIST, "")
	if err != nil {
		t.Fatal(err)
	}
	if ds.Train.N != 60000 || ds.Test.N != 10000 || ds.Shape != [3]int{1, 28, 28} {
		t.Fatalf("train %d test %d shape %v", ds.Train.N, ds.Test.N, ds.Shape)
	}
	t.Logf("fashion-mnist digest %s", ds.Digest)
}

func TestSyntheticAndGather(t *testing.T) {
	a, b := Synthetic(5, 64, 16), Synthetic(5, 64, 16)
	if Digest(a.Train.X) != Digest(b.Train.X) || string(a.Test.Y) != string(b.Test.Y) || a.Digest != b.Digest {
		t.Fatal("synthetic not deterministic")
	}
	if c := Synthetic(6, 64, 16); Digest(c.Train.X) == Digest(a.Train.X) || c.Digest == a.Digest {
		t.Fatal("seed ignored")
	}
	for _, v := range a.Train.X {
		if v < 0 || v > 1 {
			t.Fatalf("value %v outside [0,1]", v)
		}
	}
	x := make([]float32, 2*784)
	y := make([]uint8, 2)
	a.Train.Gather([]int32{5, 0}, x, y)
	if y[0] != a.Train.Y[5] || y[1] != a.Train.Y[0] || x[784] != a.Train.X[0] || x[3] != a.Train.X[5*784+3] {
		t.Error("Gather copied the wrong samples")
	}
	if err := a.Train.CheckIndices([]int32{0, 64}); !errors.Is(err, ErrShape) {
		t.Errorf("CheckIndices: %v", err)
	}
	if ds, err := LoadDataset(DatasetSynthetic, ""); err != nil || ds.Train.N != SyntheticTrain || ds.Test.N != SyntheticTest {
		t.Errorf("LoadDataset synthetic: %v", err)
	}
}

// A process holds one copy of each dataset, however many workers load it.
func TestLoadDatasetSharesOneCopy(t *testing.T) {
	a, b := writeFashion(t, 3), writeFashion(t, 4)
	first, err := LoadDataset(DatasetFashionMNIST, a)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadDataset(DatasetFashionMNIST, a+"/.")
	if err != nil || again != first {
		t.Fatalf("the same directory loaded twice gave another copy (%v)", err)
	}
	other, err := LoadDataset(DatasetFashionMNIST, b)
	if err != nil || other == first || other.Train.N != 4 {
		t.Fatalf("another directory gave the first copy (%v)", err)
	}
	if _, err := LoadDataset(DatasetFashionMNIST, t.TempDir()); err == nil {
		t.Fatal("a directory without the files loaded")
	}
}
