package model

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FashionMNISTFiles are the four files of Fashion-MNIST in the order their contents enter
// Dataset.Digest. Each may also be present uncompressed (without ".gz").
var FashionMNISTFiles = [4]string{
	"train-images-idx3-ubyte.gz",
	"train-labels-idx1-ubyte.gz",
	"t10k-images-idx3-ubyte.gz",
	"t10k-labels-idx1-ubyte.gz",
}

const fashionHint = "install it with: apt-get install dataset-fashion-mnist"

// LoadFashionMNIST reads Fashion-MNIST (60000 train and 10000 test 28x28 grey images, 10
// classes) from the IDX files in dir. A missing or malformed file gives one ErrDataset error
// naming the path and how to get the data.
func LoadFashionMNIST(dir string) (*Dataset, error) {
	h := sha256.New()
	var splits [2]Split
	for s := range splits {
		img, err := readFashionFile(dir, FashionMNISTFiles[2*s])
		if err != nil {
			return nil, err
		}
		lab, err := readFashionFile(dir, FashionMNISTFiles[2*s+1])
		if err != nil {
			return nil, err
		}
		h.Write(img.raw)
		h.Write(lab.raw)
		if len(img.dims) != 3 || img.dims[1] != 28 || img.dims[2] != 28 {
			return nil, fashionErr(img.path, fmt.Errorf("image dimensions %v, want [N 28 28]", img.dims))
		}
		if len(lab.dims) != 1 || lab.dims[0] != img.dims[0] {
			return nil, fashionErr(lab.path, fmt.Errorf("label dimensions %v, want [%d] to match the images", lab.dims, img.dims[0]))
		}
		for i, v := range lab.data {
			if v >= 10 {
				return nil, fashionErr(lab.path, fmt.Errorf("label %d of sample %d, want 0..9", v, i))
			}
		}
		splits[s] = Split{Y: append([]uint8(nil), lab.data...), N: img.dims[0]}
		if s == 0 {
			// Gathered a shard at a time: kept as grey levels (47 MB, not 188 MB).
			splits[s].Levels = append([]uint8(nil), img.data...)
		} else {
			// Evaluated whole: kept as values.
			splits[s].X = make([]float32, len(img.data))
			levelsToValues(splits[s].X, img.data)
		}
	}
	return &Dataset{
		Name: DatasetFashionMNIST, Shape: [3]int{1, 28, 28}, Classes: 10,
		Train: splits[0], Test: splits[1],
		Digest: hex.EncodeToString(h.Sum(nil)),
	}, nil
}

type idxFile struct {
	path string
	raw  []byte
	dims []int
	data []byte
}

func readFashionFile(dir, name string) (idxFile, error) {
	path := filepath.Join(dir, name)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		plain := path[:len(path)-len(".gz")]
		if r, err2 := os.ReadFile(plain); err2 == nil {
			path, raw, err = plain, r, nil
		}
	}
	if err != nil {
		return idxFile{}, fashionErr(path, err)
	}
	dims, data, err := readIDX(raw)
	if err != nil {
		return idxFile{}, fashionErr(path, err)
	}
	return idxFile{path: path, raw: raw, dims: dims, data: data}, nil
}

func fashionErr(path string, err error) error {
	return fmt.Errorf("%w: fashion-mnist %s: %v (%s)", ErrDataset, path, err, fashionHint)
}
