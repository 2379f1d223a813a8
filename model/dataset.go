package model

import (
	"fmt"
	"path/filepath"
	"sync"
)

// DefaultFashionMNISTDir is where Debian's dataset-fashion-mnist package installs the files.
const DefaultFashionMNISTDir = "/usr/share/datasets/fashion-mnist"

// Dataset names accepted by LoadDataset.
const (
	DatasetFashionMNIST = "fashion-mnist"
	DatasetSynthetic    = "synthetic"
)

// Synthetic dataset sizes and seed used by LoadDataset("synthetic", ...).
const (
	SyntheticTrain = 4096
	SyntheticTest  = 1024
	SyntheticSeed  = 1
)

// Split is one part (train or test) of a dataset: N samples, X row-major N*C*H*W float32
// values in [0,1], Y the N labels. A split of 8-bit images may keep Levels instead of X:
// N*C*H*W grey levels, level v standing for the value float32(v)/255, a quarter of the
// memory; Gather gives the same float32 values either way.
type Split struct {
	X      []float32
	Levels []uint8
	Y      []uint8
	N      int
}

// Dataset is an image classification dataset held in memory.
type Dataset struct {
	Name    string
	Shape   [3]int // channels, height, width of one sample
	Classes int
	Train   Split
	Test    Split
	// Digest is the hex sha256 identifying the contents (for files: over the raw file bytes
	// in a fixed order); equal digests mean equal data.
	Digest string
}

// SampleSize is C*H*W, the number of values of one sample.
func (d *Dataset) SampleSize() int { return d.Shape[0] * d.Shape[1] * d.Shape[2] }

// CheckIndices reports the first index outside [0, N), so data from the network can be
// validated before Gather (which panics on such an index).
func (s *Split) CheckIndices(indices []int32) error {
	for i, idx := range indices {
		if idx < 0 || int(idx) >= s.N {
			return fmt.Errorf("%w: index %d at position %d outside [0,%d)", ErrShape, idx, i, s.N)
		}
	}
	return nil
}

// Gather copies the samples at indices, in order, into x (len ≥ len(indices)*C*H*W) and y
// (len ≥ len(indices)). It panics on an index outside [0, N).
func (s *Split) Gather(indices []int32, x []float32, y []uint8) {
	if s.N == 0 || len(indices) == 0 {
		return
	}
	if s.Levels != nil {
		ss := len(s.Levels) / s.N
		for i, idx := range indices {
			levelsToValues(x[i*ss:(i+1)*ss], s.Levels[int(idx)*ss:(int(idx)+1)*ss])
			y[i] = s.Y[idx]
		}
		return
	}
	ss := len(s.X) / s.N
	for i, idx := range indices {
		copy(x[i*ss:(i+1)*ss], s.X[int(idx)*ss:(int(idx)+1)*ss])
		y[i] = s.Y[idx]
	}
}

// levelsToValues sets dst[i] to the value of grey level src[i], float32(src[i])/255.
func levelsToValues(dst []float32, src []uint8) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = levelValue[v]
	}
}

// levelValue is the value of each grey level, float32(v)/255: looking it up
// gathers a shard of 28×28 images in half the time of dividing (9.4 µs
// against 19 µs; 1.7 µs when the split keeps values), the same bytes.
var levelValue = func() (t [256]float32) {
	for v := range t {
		t[v] = float32(v) / 255
	}
	return t
}()

// LoadDataset loads a dataset by name: "fashion-mnist" from dir (DefaultFashionMNISTDir if
// dir is empty) or "synthetic" (Synthetic(SyntheticSeed, SyntheticTrain, SyntheticTest);
// dir is ignored).
//
// Datasets are read-only, and a process loads each (name, directory) once: the coordinator
// and its in-process workers share one copy (Fashion-MNIST is 78 MB: its training images
// as grey levels, its test images as float32 for evaluation). Callers
// must not modify the returned dataset.
func LoadDataset(name, dir string) (*Dataset, error) {
	key, dir, err := datasetKey(name, dir)
	if err != nil {
		return nil, err
	}
	loaded.mu.Lock()
	defer loaded.mu.Unlock() // loading twice at once would hold two copies
	if ds := loaded.sets[key]; ds != nil {
		return ds, nil
	}
	var ds *Dataset
	if name == DatasetSynthetic {
		ds = Synthetic(SyntheticSeed, SyntheticTrain, SyntheticTest)
	} else if ds, err = LoadFashionMNIST(dir); err != nil {
		return nil, err
	}
	loaded.sets[key] = ds
	return ds, nil
}

// DropDataset forgets the copy LoadDataset keeps of (name, dir), so that
// its next call reads the files again (after they were replaced).
func DropDataset(name, dir string) {
	key, _, err := datasetKey(name, dir)
	if err != nil {
		return
	}
	loaded.mu.Lock()
	delete(loaded.sets, key)
	loaded.mu.Unlock()
}

// datasetKey is the key of (name, dir) in loaded, and the directory dir
// names (Fashion-MNIST's default for "").
func datasetKey(name, dir string) (key, resolved string, err error) {
	switch name {
	case DatasetFashionMNIST:
		if dir == "" {
			dir = DefaultFashionMNISTDir
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrDataset, err)
		}
		return name + "\x00" + abs, dir, nil
	case DatasetSynthetic:
		return name, dir, nil
	}
	return "", "", fmt.Errorf("%w: unknown dataset %q (want %q or %q)", ErrDataset, name, DatasetFashionMNIST, DatasetSynthetic)
}

// loaded holds the datasets LoadDataset has returned, by name and directory.
var loaded = struct {
	mu   sync.Mutex
	sets map[string]*Dataset
}{sets: map[string]*Dataset{}}
