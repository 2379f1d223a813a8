package model

import "fmt"

// Network kinds accepted by Spec.Kind.
const (
	KindMLP = "mlp" // dense layers with ReLU, then a dense output layer
	KindCNN = "cnn" // conv 3x3 (16 filters, ReLU) → max-pool 2x2 → dense layers → output
)

// DefaultHidden are the hidden layer sizes used when Spec.Hidden is empty:
// 784-128-10 for the MLP, conv → pool → 64 → 10 for the CNN.
var (
	defaultMLPHidden = []int{128}
	defaultCNNHidden = []int{64}
)

// cnnFilters is the number of 3x3 filters of the CNN's convolution.
const cnnFilters = 16

// Spec describes a network. Kind is "mlp" or "cnn". Hidden are the sizes of the dense hidden
// layers (the MLP's, or the CNN's after pooling); empty means the default ([128] for the MLP,
// [64] for the CNN).
type Spec struct {
	Kind   string
	Hidden []int
}

// hidden returns the hidden sizes with the default applied.
func (s Spec) hidden() []int {
	if len(s.Hidden) > 0 {
		return s.Hidden
	}
	if s.Kind == KindCNN {
		return defaultCNNHidden
	}
	return defaultMLPHidden
}

// Validate reports whether the spec names a known kind with positive, bounded layer sizes.
func (s Spec) Validate() error {
	switch s.Kind {
	case KindMLP, KindCNN:
	default:
		return fmt.Errorf("%w: kind %q (want %q or %q)", ErrSpec, s.Kind, KindMLP, KindCNN)
	}
	if len(s.Hidden) > 16 {
		return fmt.Errorf("%w: %d hidden layers (at most 16)", ErrSpec, len(s.Hidden))
	}
	for i, h := range s.Hidden {
		if h <= 0 || h > 1<<16 {
			return fmt.Errorf("%w: hidden[%d] = %d (want 1..65536)", ErrSpec, i, h)
		}
	}
	return nil
}
