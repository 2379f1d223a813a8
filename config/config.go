package config

import (
	"errors"
	"fmt"

	"github.com/jettrain/jettrain/model"
)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("config: invalid")

// Config is everything a run needs to know.
type Config struct {
	Model           string    `json:"model" yaml:"model"`                       // mlp | cnn
	Hidden          []int     `json:"hidden" yaml:"hidden"`                     // hidden layer sizes: the MLP's, or the CNN's dense layers'
	Dataset         string    `json:"dataset" yaml:"dataset"`                   // fashion-mnist | synthetic
	DataDir         string    `json:"data_dir" yaml:"data_dir"`                 // where the dataset files are ("" = default)
	Epochs          int       `json:"epochs" yaml:"epochs"`                     // epochs to train
	BatchSize       int       `json:"batch_size" yaml:"batch_size"`             // global batch per step
	Shards          int       `json:"shards" yaml:"shards"`                     // tasks per step
	Seed            uint64    `json:"seed" yaml:"seed"`                         // seeds the init and the sample order
	Optimizer       Optimizer `json:"optimizer" yaml:"optimizer"`               // update rule
	CheckpointEvery int       `json:"checkpoint_every" yaml:"checkpoint_every"` // steps between checkpoints
	Keep            int       `json:"keep" yaml:"keep"`                         // checkpoints kept per run
}

// Optimizer configures the update rule.
type Optimizer struct {
	Name        string  `json:"name" yaml:"name"` // sgd | adam
	LR          float64 `json:"lr" yaml:"lr"`
	Momentum    float64 `json:"momentum" yaml:"momentum"`
	Beta1       float64 `json:"beta1" yaml:"beta1"`
	Beta2       float64 `json:"beta2" yaml:"beta2"`
	Eps         float64 `json:"eps" yaml:"eps"`
	WeightDecay float64 `json:"weight_decay" yaml:"weight_decay"`
	Schedule    string  `json:"schedule" yaml:"schedule"` // constant | cosine | step
	Warmup      int     `json:"warmup" yaml:"warmup"`     // warm-up steps
}

// Default is the configuration that trains the MLP on Fashion-MNIST to at
// least 88% test accuracy.
func Default() Config {
	return Config{
		Model:     "mlp",
		Hidden:    []int{256},
		Dataset:   "fashion-mnist",
		Epochs:    10,
		BatchSize: 128,
		Shards:    4,
		Seed:      1,
		Optimizer: Optimizer{Name: "adam", LR: 1e-3, Momentum: 0.9, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Schedule: "constant"},
		// The grads stream keeps every gradient since the newest
		// checkpoint; the broker holds recent stream blocks in memory, so
		// frequent checkpoints keep it small (measured on the default run
		// with two workers: every 200 steps, 1.6 GB resident and 57 s for
		// ten epochs; every 50 steps, 0.8 GB and 53 s).
		// A checkpoint of the default run costs about 20 ms in the
		// background, and the S3 server about 13 ms of CPU.
		CheckpointEvery: 50,
		Keep:            3,
	}
}

// Validate reports the first key whose value is out of range.
func (c Config) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v, want %s", ErrInvalid, key, v, want)
	}
	switch {
	case c.Model != "mlp" && c.Model != "cnn":
		return bad("model", c.Model, "mlp or cnn")
	case c.Dataset != "fashion-mnist" && c.Dataset != "synthetic":
		return bad("dataset", c.Dataset, "fashion-mnist or synthetic")
	case c.Epochs < 1:
		return bad("epochs", c.Epochs, "at least 1")
	case c.BatchSize < 1:
		return bad("batch_size", c.BatchSize, "at least 1")
	case c.Shards < 1 || c.Shards > c.BatchSize || c.Shards > 4096:
		return bad("shards", c.Shards, fmt.Sprintf("between 1 and batch_size (%d)", c.BatchSize))
	case c.CheckpointEvery < 1:
		return bad("checkpoint_every", c.CheckpointEvery, "at least 1")
	case c.Keep < 2:
		return bad("keep", c.Keep, "at least 2 (the newest and a fallback)")
	}
	for _, h := range c.Hidden {
		if h < 1 {
			return bad("hidden", c.Hidden, "positive sizes")
		}
	}
	if err := c.ModelSpec().Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := c.OptimizerSpec(0).Validate(); err != nil {
		return fmt.Errorf("%w: optimizer: %v", ErrInvalid, err)
	}
	return nil
}

// ModelSpec is the network the config describes.
func (c Config) ModelSpec() model.Spec {
	return model.Spec{Kind: c.Model, Hidden: append([]int(nil), c.Hidden...)}
}

// NewModel builds the run's network for ds and its optimizer, as the
// coordinator, its recompute loop and every worker replica do alike.
func (c Config) NewModel(ds *model.Dataset) (*model.Network, model.Optimizer, error) {
	net, err := model.New(c.ModelSpec(), ds.Shape, ds.Classes)
	if err != nil {
		return nil, nil, err
	}
	opt, err := c.NewOptimizer(ds.Train.N, net.Layout().Size())
	if err != nil {
		net.Close()
		return nil, nil, err
	}
	return net, opt, nil
}

// NewOptimizer returns the run's optimizer for a network of size parameters
// trained on trainN samples: the coordinator and every worker replica build
// it alike, with the learning-rate schedule spanning the whole run.
func (c Config) NewOptimizer(trainN, size int) (model.Optimizer, error) {
	return model.NewOptimizer(c.OptimizerSpec(model.StepsPerEpoch(trainN, c.BatchSize)*c.Epochs), size)
}

// OptimizerSpec is the update rule, over totalSteps steps (for schedules).
func (c Config) OptimizerSpec(totalSteps int) model.OptimizerSpec {
	o := c.Optimizer
	return model.OptimizerSpec{
		Name: o.Name, LR: o.LR, Momentum: o.Momentum, Beta1: o.Beta1, Beta2: o.Beta2, Eps: o.Eps,
		WeightDecay: o.WeightDecay, Schedule: o.Schedule, WarmupSteps: o.Warmup, TotalSteps: totalSteps,
	}
}
