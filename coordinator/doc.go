// Package coordinator runs a jettrain training run.
//
// The run itself is [Machine], a pure state machine: it takes the gradients
// read from the grads stream and returns a [Ready] saying what to publish and
// what to persist. It never touches the network, storage or the clock, so
// scenario tests drive it directly and recovery replays the stream through
// it.
//
// [Train] is the node around it. It resolves the run's signature, stores the
// resolved config, loads the newest valid checkpoint, replays the grads stream
// from the sequence that checkpoint covers (reusing every gradient already
// computed), then publishes the tasks still missing and serves the run until
// its last epoch: it reads gradients in stream order, publishes each new
// weights version and its tasks, and saves checkpoints in the background so a
// slow or unavailable object store never stalls training. The grads stream
// keeps only the gradients since the newest checkpoint (trimmer); a restart
// that has to fall back to an older checkpoint recomputes the steps to the
// newest one in this process before it replays the rest. A broker that
// restarts is ridden out; one that refuses to store for want of room ends
// the run with [ErrNoRoom] once no step has gone through for a grace, and
// the same config started again resumes it once there is room.
//
// Bit-identical results follow from the determinism rules: the sample order
// and the shard split depend only on (seed, epoch, step), the shards of a
// step are summed in shard order (each folded in as soon as the shards
// before it are in, which is the same sequence of additions), and the
// optimizer is a pure function. The
// number of workers, their speed, their failures and the coordinator's
// restarts change none of these.
package coordinator
