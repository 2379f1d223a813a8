package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("Load with nothing = %+v, want the defaults", c)
	}
}

func TestFileThenOverrides(t *testing.T) {
	f := filepath.Join(t.TempDir(), "run.yaml")
	os.WriteFile(f, []byte("model: cnn\nepochs: 3\noptimizer:\n  name: sgd\n  lr: 0.05\n"), 0o644)
	c, err := Load(f, []string{"optimizer.lr=0.1", "hidden=[64, 32]", "seed=7"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != "cnn" || c.Epochs != 3 || c.Optimizer.Name != "sgd" || c.Optimizer.LR != 0.1 ||
		!reflect.DeepEqual(c.Hidden, []int{64, 32}) || c.Seed != 7 || c.Optimizer.Beta2 != 0.999 {
		t.Fatalf("resolved %+v", c)
	}
}

func TestUnknownKeysAndBadValues(t *testing.T) {
	f := filepath.Join(t.TempDir(), "run.yaml")
	os.WriteFile(f, []byte("optimizer:\n  nme: sgd\n"), 0o644)
	twoDocs := filepath.Join(t.TempDir(), "two.yaml")
	os.WriteFile(twoDocs, []byte("epochs: 3\n---\nseed: 7\nbogus_key: 1\n"), 0o644)
	nullSeed := filepath.Join(t.TempDir(), "null.yaml")
	os.WriteFile(nullSeed, []byte("epochs: 3\nseed:\n"), 0o644)
	for _, tc := range []struct {
		file string
		sets []string
		want string
	}{
		{f, nil, `unknown key "nme"`},
		{"", []string{"lerning_rate=1"}, `unknown key "lerning_rate"`},
		{"", []string{"epochs"}, "want key=value"},
		{"", []string{"epochs=many"}, "epochs"},
		{"", []string{"model=rnn"}, "model = rnn"},
		{"", []string{"shards=0"}, "shards"},
		{"", []string{"optimizer.lr.x=1"}, "no sub-keys"},
		{filepath.Join(t.TempDir(), "missing.yaml"), nil, "missing.yaml"},
		{twoDocs, nil, "two.yaml: more than one YAML document"},
		{nullSeed, nil, "null.yaml: seed: no value"},
		{"", []string{"hidden="}, "--set hidden: no value"},
		{"", []string{"optimizer.lr=.nan"}, "--set optimizer.lr: NaN is not a finite number"},
	} {
		_, err := Load(tc.file, tc.sets)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q, %q) = %v, want an ErrInvalid mentioning %q", tc.file, tc.sets, err, tc.want)
		}
	}
}

func TestSignatureCoversOnlyTheMath(t *testing.T) {
	base := Default()
	same := base
	same.Epochs, same.CheckpointEvery, same.Keep, same.DataDir = 30, 7, 9, "/elsewhere"
	if base.Signature() != same.Signature() {
		t.Fatal("epochs, checkpoint interval, retention or data dir changed the signature")
	}
	for _, set := range []string{"seed=2", "optimizer.lr=0.01", "shards=8", "batch_size=64", "model=cnn", "hidden=[64]"} {
		c, err := Load("", []string{set})
		if err != nil {
			t.Fatal(err)
		}
		if c.Signature() == base.Signature() {
			t.Errorf("%s kept the signature", set)
		}
	}
	c, _ := Load("", []string{"optimizer.lr=0.01", "seed=3"})
	if got := Diff(base, c); !reflect.DeepEqual(got, []string{"optimizer.lr", "seed"}) {
		t.Fatalf("Diff = %v", got)
	}
	cnn, _ := Load("", []string{"model=cnn"})
	cnnWide, _ := Load("", []string{"model=cnn", "hidden=[64]"})
	if cnn.Signature() == cnnWide.Signature() {
		t.Error("the CNN's dense layers are sized by hidden, but changing it kept the signature")
	}
	cos, _ := Load("", []string{"optimizer.schedule=cosine"})
	cos2 := cos
	cos2.Epochs = 20
	if cos.Signature() == cos2.Signature() {
		t.Fatal("a cosine schedule depends on epochs but the signature ignores them")
	}
}
