// Package protocol is the wire contract between the jettrain coordinator and
// its workers: the messages, the NATS subjects they travel on, the JetStream
// streams that hold them, and a compact binary codec.
//
// # Flow
//
// For every optimizer step the coordinator publishes the weights version the
// step starts from as a [Params] message on ParamsSubject(run, step), then one
// [Task] per shard on TasksSubject(run). Workers share one durable pull
// consumer (WorkersConsumer) on the work-queue stream TasksStream, so adding a
// worker only adds a puller. A worker fetches the Params a task names, computes
// the shard's gradient and publishes a [Grad] on GradsSubject(run), with the
// JetStream message id MsgID(run, step, shard) so a retried publish is
// deduplicated by the server. The coordinator reads GradsStream in order,
// drops any (step, shard) it already has, sums the shards in shard order and
// commits the step.
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
// reference to the input buffer.
//
// # Limits
//
// A message must fit the NATS server's max payload. The embedded server is
// started with MaxPayload (8 MiB), which holds about two million float32
// parameters per gradient; external servers must be configured alike
// (max_payload in nats-server.conf).
package protocol
