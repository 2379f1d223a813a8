package protocol

// Version is the codec version written as the first byte of every message.
const Version byte = 1

// Kind is the second byte of every message.
type Kind byte

// Message kinds.
const (
	KindTask      Kind = 1
	KindGrad      Kind = 2
	KindParams    Kind = 3
	KindHeartbeat Kind = 4
)

// Limits enforced by the decoders.
const (
	MaxRunLen     = 64
	MaxWorkerLen  = 128
	MaxShards     = 4096
	MaxIndices    = 1 << 20
	MaxParameters = MaxPayload / 4
)

// Task asks a worker for the gradient of one shard of one step.
type Task struct {
	Run     string  // run signature
	Step    uint64  // weights version the gradient is taken at (steps applied so far)
	Epoch   uint32  // epoch the step belongs to
	Shard   uint16  // shard index in [0, Shards)
	Shards  uint16  // shards per step
	Indices []int32 // training-sample indices of the shard, in order
}

// Grad is a worker's answer to a Task.
type Grad struct {
	Run     string
	Step    uint64
	Shard   uint16
	Worker  string    // worker id, for tracing and statistics only
	Weights [8]byte   // first bytes of the digest of the weights used
	LossSum float64   // summed loss over the shard's samples
	Correct uint32    // correctly classified samples
	Count   uint32    // samples in the shard
	Grad    []float32 // gradient of the summed loss
}

// Params is one weights version of a run.
type Params struct {
	Run     string
	Step    uint64
	Epoch   uint32
	Digest  [32]byte // sha256 of the little-endian weights
	Weights []float32
}

// Heartbeat is a worker announcing it is alive.
type Heartbeat struct {
	Worker string
	Tasks  uint64 // tasks completed since start
}
