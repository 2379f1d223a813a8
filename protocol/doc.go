// Package protocol is the wire contract between the jettrain coordinator and
// its workers: the messages, the NATS subjects they travel on, the JetStream
// streams that hold them, and a compact binary codec.
//
// # Flow
//
// The coordinator publishes one [Task] per shard on TasksSubject(run), a
// step ahead: the tasks of step s+1 go out when step s-1 commits. Workers
// share one durable pull consumer (WorkersConsumer) on the work-queue stream
// TasksStream, so adding a worker only adds a puller. A worker computes a
// shard's gradient on the weights version the task names and publishes a
// [Grad] on GradSubject(run, step, shard) with the JetStream message id
// GradMsgID, so a retried publish is deduplicated by the server. A worker
// that computed the first shards of a step itself sends them as one Grad:
// their sum, folded in shard order from zero.
//
// Workers do not receive weights. Each keeps a replica of the run's state —
// weights and optimizer state — and steps it forward itself from the
// gradients of the step (its own, and other workers', which it receives by
// subscription or fetches from GradsStream by subject), with the same
// summation and optimizer code as the coordinator, so every version is the
// same bytes everywhere. A worker starts from the run's newest snapshot
// ([Params] with weights and optimizer state), object StateObject(run) in
// the StateBucket object store, which the coordinator writes at start and
// with every checkpoint. The object store splits it into chunks, so a
// snapshot may be larger than the server's max payload (and so may a
// gradient, which then goes in parts: see Limits).
//
// The coordinator reads GradsStream in order, drops any (step, shard) it
// already has, sums the shards in shard order, applies the optimizer and
// publishes the step's commit record ([Params] with the weights check only) on
// ParamsSubject(run, step+1), expecting the subject to be empty: of two
// coordinators, only one can commit a step. A gradient names the check (a
// 64-bit hash, model.Check) of the weights it was computed on, and the
// coordinator uses it only if it matches its own.
//
// GradsStream is the write-ahead log of a run: a checkpoint records the
// sequence it covers, and recovery replays the stream from there.
//
// # Codec
//
// Every message starts with a one-byte codec version (Version) and a one-byte
// kind. Integers and floats are little-endian; strings and slices carry a
// uvarint length. Decoders validate every field and return an error wrapping
// ErrMalformed for anything they do not accept, never panic, and never keep a
// reference to the input buffer. A message of another codec version is
// malformed. A run that a newer jettrain resumes goes on from its
// checkpoint (the object store's own format): the coordinator skips the
// earlier version's gradients and workers refuse its tasks. Commit records
// are on subjects, and tasks under message ids, that name the codec version,
// so the earlier version's neither block nor deduplicate the new ones.
//
// # Limits
//
// A gradient goes as one message when it fits the NATS server's max payload.
// The embedded server is started with MaxPayload (8 MiB), which holds about
// two million float32 parameters per gradient. A larger one goes in parts
// (GradPart, see Grad.AppendParts), each a message on the gradient's
// subject under a message id of its own; readers put them back together
// with an Assembler, and the coordinator's checkpoints cover a gradient's
// parts only once it has them all. Networks are bounded by MaxParameters.
// Snapshots are stored in the StateBucket object store in chunks, so they
// may be larger than a message too.
package protocol
