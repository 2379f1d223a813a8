package model

import "errors"

// Sentinel errors. Every error the package returns wraps one of these, so callers can
// match with errors.Is and still show the wrapped message (which names what and where).
var (
	// ErrSpec reports an invalid network Spec or an input shape the network cannot take.
	ErrSpec = errors.New("model: invalid network spec")
	// ErrOptimizer reports an invalid OptimizerSpec.
	ErrOptimizer = errors.New("model: invalid optimizer spec")
	// ErrState reports optimizer state that is malformed or sized for another network.
	ErrState = errors.New("model: invalid optimizer state")
	// ErrShape reports parameters, gradients, inputs or labels of the wrong length.
	ErrShape = errors.New("model: wrong length")
	// ErrLabel reports a label outside [0, classes).
	ErrLabel = errors.New("model: label out of range")
	// ErrDataset reports a dataset that is missing, unknown or malformed.
	ErrDataset = errors.New("model: dataset")
	// ErrCompute reports a failure inside the gorgonia graph.
	ErrCompute = errors.New("model: compute")
)
