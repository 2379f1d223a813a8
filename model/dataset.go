package model

import (
	"fmt"
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
// values in [0,1], Y the N labels.
type Split struct {
	X []float32
	Y []uint8
	N int
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
	ss := len(s.X) / s.N
	for i, idx := range indices {
		copy(x[i*ss:(i+1)*ss], s.X[int(idx)*ss:(int(idx)+1)*ss])
		y[i] = s.Y[idx]
	}
}

// LoadDataset loads a dataset by name: "fashion-mnist" from dir (DefaultFashionMNISTDir if
// dir is empty) or "synthetic" (Synthetic(SyntheticSeed, SyntheticTrain, SyntheticTest);
// dir is ignored).
func LoadDataset(name, dir string) (*Dataset, error) {
	switch name {
	case DatasetFashionMNIST:
		if dir == "" {
			dir = DefaultFashionMNISTDir
		}
		return LoadFashionMNIST(dir)
	case DatasetSynthetic:
		return Synthetic(SyntheticSeed, SyntheticTrain, SyntheticTest), nil
	}
	return nil, fmt.Errorf("%w: unknown dataset %q (want %q or %q)", ErrDataset, name, DatasetFashionMNIST, DatasetSynthetic)
}
