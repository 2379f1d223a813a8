package protocol

// Version is the codec version written as the first byte of every message.
const Version byte = 3

// Kind is the second byte of every message.
type Kind byte

// Message kinds.
const (
	KindTask      Kind = 1
	KindGrad      Kind = 2
	KindParams    Kind = 3
	KindHeartbeat Kind = 4
	KindRefusal   Kind = 5
	KindGradPart  Kind = 6
)

// Limits enforced by the decoders.
const (
	MaxRunLen    = 64
	MaxWorkerLen = 128
	MaxShards    = 4096
	MaxIndices   = 1 << 20
	// MaxParameters bounds a network: the values of a gradient (sent in
	// parts when it does not fit one message, see GradPart) and the
	// weights of a snapshot (stored in chunks).
	MaxParameters = 1 << 26
	// MaxOptState bounds a snapshot's optimizer state: a few values per
	// parameter (Adam keeps two) and a header.
	MaxOptState = 4*4*MaxParameters + 1024
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

// Grad is a worker's answer to one Task, or to the first tasks of a step:
// a worker that computed shards 0..n-1 of a step itself sends them as one
// message, whose gradient is their sum folded in shard order from zero —
// what model.ShardSum holds after them, and what the coordinator would have
// summed from n separate messages.
type Grad struct {
	Run     string
	Step    uint64
	Shard   uint16       // the first shard covered
	Worker  string       // worker id, for tracing and statistics only
	Weights [8]byte      // the check (model.Check) of the weights it was computed on
	Stats   []ShardStats // one per shard covered, from Shard on; several only from shard 0
	Grad    []float32    // gradient of the summed loss (of the shards covered, summed in order)
}

// GradPart is one part of a gradient too large for one message (see
// Grad.AppendParts): the values Offset..Offset+len(Grad.Grad)-1 of a
// gradient of Total values, with every other field the whole gradient's.
// The parts of one gradient go to its subject, each under a message id of
// its own (GradPartMsgID); an Assembler puts them back together.
type GradPart struct {
	Grad          // Grad.Grad holds this part's values only
	Offset uint32 // index of the first value in the whole gradient
	Total  uint32 // values in the whole gradient
}

// ShardStats is what a shard's forward pass measured.
type ShardStats struct {
	LossSum float64 // summed loss over the shard's samples
	Correct uint32  // correctly classified samples
	Count   uint32  // samples in the shard
}

// Shards is the number of shards g covers.
func (g *Grad) Shards() int { return len(g.Stats) }

// Params is one weights version of a run. On ParamsSubject it is the
// commit record of a step: the check of the version the step produced, with
// no weights (workers rebuild them). In StateBucket it is a snapshot a
// worker starts from: the weights and the optimizer state that go with them.
type Params struct {
	Run      string
	Step     uint64
	Epoch    uint32
	Check    [8]byte   // model.Check of the weights
	Weights  []float32 // empty in a commit record
	OptState []byte    // optimizer state (model.Optimizer.MarshalState); empty in a commit record
}

// Snapshot reports whether p carries weights, not only their check.
func (p *Params) Snapshot() bool { return len(p.Weights) > 0 }

// Heartbeat is a worker announcing it is alive.
type Heartbeat struct {
	Worker string
	Tasks  uint64 // tasks completed since start
}
